"""XorPay's protocol: sign vectors worked out by hand from SPEC 7, and the client against a real HTTP peer."""

import socket

import pytest

from ledger.services.payments.xorpay import (
    GATEWAY_MESSAGES,
    GatewayError,
    XorPayClient,
    notify_sign,
    sign,
    verify_notify_sign,
)

SECRET = "s3cr3t"
ORDER_ID = "2b9fc5b8-1d2e-4e9a-9a59-0d3c3f5b7a1c"
NOTIFY = {
    "aoid": "dfa20e231xf64069a615ecfee0527726",
    "order_id": ORDER_ID,
    "pay_price": "50.00",
    "pay_time": "2019-01-01 00:00:00",
}


# md5 of the plain concatenations, computed with `printf '%s' '...' | md5sum`.
def test_create_sign_is_md5_of_name_pay_type_price_order_id_notify_url_secret():
    assert sign("Ledger top-up", "alipay", "50.00", "demo-3", "http://abc.com/xorpay_notify", SECRET) == (
        "2f0af57085f658b6cf7cfbdcb43f01d5"
    )


def test_create_sign_encodes_chinese_names_as_utf8():
    assert sign("Ledger 余额充值 ¥50.00", "alipay", "50.00", "o-1", "http://x/n", "s") == (
        "d98c7673b9b47a5d66806bd414801b33"
    )


def test_notify_sign_is_md5_of_aoid_order_id_pay_price_pay_time_secret():
    assert notify_sign(NOTIFY, SECRET) == "16dba5c897b326382c96a760419c8e2e"
    assert verify_notify_sign({**NOTIFY, "sign": "16dba5c897b326382c96a760419c8e2e"}, SECRET)
    assert verify_notify_sign({**NOTIFY, "sign": "16DBA5C897B326382C96A760419C8E2E"}, SECRET)


@pytest.mark.parametrize("field", ["aoid", "order_id", "pay_price", "pay_time"])
def test_notify_sign_breaks_when_any_signed_field_changes(field):
    tampered = {**NOTIFY, field: NOTIFY[field] + "0", "sign": "16dba5c897b326382c96a760419c8e2e"}
    assert not verify_notify_sign(tampered, SECRET)


def test_notify_sign_does_not_cover_more_or_detail():
    assert verify_notify_sign(
        {**NOTIFY, "more": "x", "detail": "{}", "sign": "16dba5c897b326382c96a760419c8e2e"}, SECRET
    )


def test_query2_signs_the_order_id_and_refund_the_price():
    assert sign(ORDER_ID, SECRET) == "2fc813d1e6ddcbbc4c2d8a7cc9190bbf"
    assert sign("12.50", SECRET) == "1374ae92d836d592eb439a462d8dd8ac"


@pytest.fixture
def client(httpserver):
    return XorPayClient(httpserver.url_for("/"), "aid-1", SECRET, timeout=(1, 1))


def test_create_posts_the_signed_form_and_reads_the_answer(httpserver, client):
    httpserver.expect_request("/api/pay/aid-1", method="POST").respond_with_json(
        {"status": "ok", "aoid": "a-1", "expires_in": "7200", "info": {"qr": "https://qr.alipay.com/x"}}
    )
    created = client.create(
        name="Ledger top-up",
        pay_type="alipay",
        price="50.00",
        order_id="demo-3",
        notify_url="http://abc.com/xorpay_notify",
        expire=1800,
        order_uid="5f0c1d2e-0000-4000-8000-000000000001",
    )
    assert (created.aoid, created.qr, created.expires_in) == ("a-1", "https://qr.alipay.com/x", 7200)
    request, _ = httpserver.log[0]
    assert request.form.to_dict() == {
        "name": "Ledger top-up",
        "pay_type": "alipay",
        "price": "50.00",
        "order_id": "demo-3",
        "notify_url": "http://abc.com/xorpay_notify",
        "expire": "1800",
        "order_uid": "5f0c1d2e-0000-4000-8000-000000000001",
        "sign": "2f0af57085f658b6cf7cfbdcb43f01d5",
    }


def test_create_reads_expire_in_as_the_docs_spell_it(httpserver, client):
    httpserver.expect_request("/api/pay/aid-1").respond_with_json(
        {"status": "ok", "aoid": "a-2", "expire_in": 600, "info": {"qr": "https://qr.alipay.com/y"}}
    )
    assert (
        client.create(name="n", pay_type="alipay", price="1.00", order_id="o", notify_url="u", expire=1800).expires_in
        == 600
    )


@pytest.mark.parametrize(
    "status",
    [
        "sign_error",
        "order_payed",
        "order_expire",
        "order_exist",
        "fee_error",
        "app_off",
        "no_alipay_contract",
        "alipay_api_error",
        "missing_argument",
    ],
)
def test_create_error_statuses_raise_with_a_message_for_the_payer(httpserver, client, status):
    httpserver.expect_request("/api/pay/aid-1").respond_with_json({"status": status, "info": "reason"})
    with pytest.raises(GatewayError) as raised:
        client.create(name="n", pay_type="alipay", price="1.00", order_id="o", notify_url="u", expire=60)
    assert raised.value.gateway_status == status
    assert raised.value.status == 502
    assert raised.value.message == GATEWAY_MESSAGES[status]


@pytest.mark.parametrize(
    ("answer", "kind"),
    [
        ("not json", "bad_response"),
        ("[1, 2]", "bad_response"),
        ('{"status": "ok"}', "bad_response"),
        ('{"status": "ok", "aoid": "a", "info": {}}', "bad_response"),
        ('{"status": "ok", "aoid": "a", "info": {"qr": "q"}, "expires_in": "soon"}', "bad_response"),
        ("{}", "bad_response"),
    ],
)
def test_create_malformed_answers_raise_bad_response(httpserver, client, answer, kind):
    httpserver.expect_request("/api/pay/aid-1").respond_with_data(answer, content_type="application/json")
    with pytest.raises(GatewayError) as raised:
        client.create(name="n", pay_type="alipay", price="1.00", order_id="o", notify_url="u", expire=60)
    assert raised.value.gateway_status == kind


def test_create_times_out_when_xorpay_accepts_but_never_answers():
    with socket.socket() as silent:  # a peer that accepts the connection and says nothing
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        client = XorPayClient(f"http://127.0.0.1:{silent.getsockname()[1]}", "aid", SECRET, timeout=(1, 0.5))
        with pytest.raises(GatewayError) as raised:
            client.create(name="n", pay_type="alipay", price="1.00", order_id="o", notify_url="u", expire=60)
    assert raised.value.gateway_status == "timeout"


def test_unreachable_gateway_is_a_gateway_error():
    client = XorPayClient("http://127.0.0.1:9", "aid", SECRET, timeout=(1, 1))
    with pytest.raises(GatewayError) as raised:
        client.query2("o")
    assert raised.value.gateway_status == "unreachable"


def test_query2_sends_the_signed_query(httpserver, client):
    httpserver.expect_request(
        "/api/query2/aid-1",
        query_string={"order_id": ORDER_ID, "sign": "2fc813d1e6ddcbbc4c2d8a7cc9190bbf"},
    ).respond_with_json({"status": "payed"})
    assert client.query2(ORDER_ID) == "payed"


def test_refund_sends_price_and_sign(httpserver, client):
    httpserver.expect_request(
        "/api/refund/a-1", method="POST", data="price=12.50&sign=1374ae92d836d592eb439a462d8dd8ac"
    ).respond_with_json({"status": "ok"})
    client.refund("a-1", "12.50")
    httpserver.expect_request("/api/refund/a-2").respond_with_json({"status": "price_error"})
    with pytest.raises(GatewayError, match="refused"):
        client.refund("a-2", "99.00")
