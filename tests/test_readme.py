"""README's Integrating section runs as it is written: its Python snippets, in order and in one
namespace, against the app served over real HTTP, with only the address and the token changed to
this test server's. So the quickstart cannot drift from what Ledger does."""

import contextlib
import dataclasses
import io
import json
import re
import time
from decimal import Decimal
from pathlib import Path

import pytest

from ledger.services.books.accounts import adjust_balance
from ledger.services.context import SYSTEM
from ledger.services.events import signature
from tests.helpers import INTERNAL_KEY

README = Path(__file__).resolve().parents[1] / "README.md"
README_URL, README_TOKEN = "http://127.0.0.1:5000", "dev-internal-api-key-change-me"


def integrating_snippets() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("\n## Integrating\n") : text.index("\n## Operating\n")]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_the_quickstart_has_its_steps():
    snippets = integrating_snippets()
    assert len(snippets) == 6  # create or find, portal, charge, hold, batch, verify an event
    assert all(README_URL not in s or s.count(README_URL) == 1 for s in snippets)


@pytest.fixture
def served(live_server, committed, monkeypatch):
    """The live app, with the return host README's portal link names allowed (as .env.example does)."""
    config = dataclasses.replace(live_server.app.config["LEDGER"], PORTAL_RETURN_HOSTS="localhost:3000")
    monkeypatch.setitem(live_server.app.config, "LEDGER", config)
    return live_server


def test_readmes_quickstart_runs_against_the_app(served, committed):
    namespace: dict = {}
    printed = io.StringIO()
    create, portal, charge, hold, batch, events = (
        s.replace(README_URL, served.url).replace(README_TOKEN, INTERNAL_KEY) for s in integrating_snippets()
    )
    with contextlib.redirect_stdout(printed):
        exec(compile(create, "README:create", "exec"), namespace)  # noqa: S102 - README's own code
        assert (namespace["made"].status_code, namespace["account"]["available"]) == (201, "0.00")
        exec(compile(create, "README:create-again", "exec"), namespace)  # noqa: S102
        assert namespace["made"].status_code == 200  # the same person again: the same account

        exec(compile(portal, "README:portal", "exec"), namespace)  # noqa: S102
        assert namespace["link"]["url"].startswith(f"{served.url}/portal/")
        landed = namespace["api"].get(namespace["link"]["url"], allow_redirects=False)
        assert (landed.status_code, landed.headers["Location"]) == (302, "/recharge")

        # The person tops up on /recharge (here: credited directly), then the SaaS charges.
        with committed.session() as session:
            adjust_balance(session, user_id=namespace["user_id"], amount=Decimal("20.00"), memo="top-up", ctx=SYSTEM)
        exec(compile(charge, "README:charge", "exec"), namespace)  # noqa: S102
        assert namespace["charge"].status_code == 200
        assert namespace["charge"].json()["balance"] == "19.80"

        exec(compile(hold, "README:hold", "exec"), namespace)  # noqa: S102
        done = namespace["done"]
        assert (done["status"], done["captured_amount"], done["released_amount"]) == ("captured", "3.40", "1.60")
        assert done["balance"] == "16.40"

        exec(compile(batch, "README:batch", "exec"), namespace)  # noqa: S102
        assert [item["status"] for item in namespace["batch"]["results"]] == ["charged", "insufficient_balance"]

        exec(compile(events, "README:events", "exec"), namespace)  # noqa: S102
    body = json.dumps({"id": "evt_1", "type": "balance.low", "data": {}}).encode()
    now = int(time.time())
    verified = namespace["verified"]
    assert verified("s" * 32, body, signature("s" * 32, body, now))
    assert not verified("s" * 32, body + b" ", signature("s" * 32, body, now))  # another body
    assert not verified("s" * 32, body, signature("s" * 32, body, now - 301))  # too old
    # What the snippets print says what their comments say.
    lines = printed.getvalue().splitlines()
    assert lines[0] == "201 0.00" and lines[2] == "200 0.00"
    assert "['charged', 'insufficient_balance']" in lines
