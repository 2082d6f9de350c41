"""The sandbox keeps its orders where every server process finds them (`gunicorn -w N`): one JSON
file in the instance folder, changed under a file lock. bench/sandbox_workers.py measures it under
gunicorn itself."""

from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

from ledger import create_app
from ledger.sandbox.store import FILENAME, SandboxStore
from ledger.services.payments.xorpay import sign
from tests.helpers import XORPAY_AID, XORPAY_SECRET, csrf_token_in, run_together

SANDBOX = "/sandbox/xorpay"


def test_two_app_instances_share_the_sandbox_orders(settings, database, tmp_path):
    """As two gunicorn workers: what one created, the other finds (query2, pay page, pay, refund, switches)."""
    shared = replace(settings, XORPAY_SANDBOX=True, INSTANCE_PATH=str(tmp_path / "instance"))
    first, second = (create_app(shared, database).test_client() for _ in range(2))
    fields = {
        "name": "t",
        "pay_type": "native",
        "price": "8.00",
        "order_id": "shared-1",
        "notify_url": "http://127.0.0.1:9/n",
    }
    created = first.post(
        f"{SANDBOX}/api/pay/{XORPAY_AID}", data={**fields, "sign": sign(*fields.values(), XORPAY_SECRET)}
    )
    aoid = created.get_json()["aoid"]

    query2 = {"order_id": "shared-1", "sign": sign("shared-1", XORPAY_SECRET)}
    assert second.get(f"{SANDBOX}/api/query2/{XORPAY_AID}", query_string=query2).get_json()["status"] == "new"
    page = second.get(f"{SANDBOX}/pay/{aoid}")
    assert page.status_code == 200 and "微信支付" in page.get_data(as_text=True)
    token = csrf_token_in(page.get_data(as_text=True))
    paid = second.post(f"{SANDBOX}/pay/{aoid}", data={"csrf_token": token})
    assert "not delivered" in paid.get_data(as_text=True)  # nobody listens at the notify_url
    assert first.get(f"{SANDBOX}/api/query2/{XORPAY_AID}", query_string=query2).get_json()["status"] == "payed"
    refund = first.post(f"{SANDBOX}/api/refund/{aoid}", data={"price": "1.00", "sign": sign("1.00", XORPAY_SECRET)})
    assert refund.get_json()["status"] == "order_error"  # payed, the notify never acknowledged
    assert "shared-1" in first.get(f"{SANDBOX}/").get_data(as_text=True)

    token = csrf_token_in(first.get(f"{SANDBOX}/").get_data(as_text=True))
    first.post(f"{SANDBOX}/switches", data={"csrf_token": token, "refund": "timeout"})
    assert 'id="refund-timeout" checked' in second.get(f"{SANDBOX}/").get_data(as_text=True)
    assert (tmp_path / "instance" / FILENAME).is_file()


def create_orders(path: str, prefix: str, count: int = 25) -> list[str]:
    """Create `count` orders in the store at `path`, from 5 threads; their aoids."""
    store = SandboxStore(Path(path))

    def create(n: int) -> str:
        fields = {"name": "t", "pay_type": "alipay", "price": "1.00", "order_id": f"{prefix}-{n}", "notify_url": "u"}
        status, order = store.create(fields, 600)
        assert status == "ok" and order is not None
        return order.aoid

    with ThreadPoolExecutor(5) as pool:
        return list(pool.map(create, range(count)))


def test_no_change_is_lost_when_processes_and_threads_write_at_once(tmp_path):
    path = tmp_path / FILENAME
    with ProcessPoolExecutor(4) as pool:
        made = [aoid for aoids in pool.map(create_orders, [str(path)] * 4, "abcd") for aoid in aoids]
    store = SandboxStore(path)
    assert len(set(made)) == 100 and {o.aoid for o in store.recent(limit=1000)} == set(made)

    # Paying an order from 8 threads at the same instant: paid once.
    assert sorted(run_together(8, lambda _: store.mark_payed(made[0])[0])) == ["new"] + ["payed"] * 7
    store.record_notify(made[0], "HTTP 200 ok", acknowledged=True)
    # Refunds of one order at once: never more than it was paid; a switch acts once.
    answers = run_together(8, lambda _: store.refund(made[0], Decimal("0.30")))
    assert sorted(answers) == ["ok"] * 3 + ["price_error"] * 5
    assert store.by_aoid(made[0]).refunded == Decimal("0.90")
    store.set_switch("refund", "timeout")
    assert sorted(run_together(8, lambda _: store.take_switch("refund"))) == [""] * 7 + ["timeout"]
