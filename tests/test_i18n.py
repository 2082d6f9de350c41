"""Chinese by default, English on request, and every visible string translated."""

import io
import subprocess
import sys
from pathlib import Path

from babel.messages.extract import DEFAULT_KEYWORDS
from babel.messages.pofile import read_po

from ledger.i18n import extract_blueprint
from tests.factories import UserFactory

ROOT = Path(__file__).resolve().parent.parent


def test_every_message_has_a_chinese_translation(tmp_path):
    pot = tmp_path / "messages.pot"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "babel.messages.frontend",
            "extract",
            "-F",
            str(ROOT / "babel.cfg"),
            "-k",
            "_l",
            "-k",
            "N_",
            "-o",
            str(pot),
            str(ROOT / "ledger"),
        ],
        check=True,
        cwd=ROOT,
        capture_output=True,
    )
    with pot.open("rb") as f:
        wanted = {m.id for m in read_po(f) if m.id}
    assert len(wanted) > 60, "extraction found too few messages: check babel.cfg"
    with (ROOT / "ledger/translations/zh/LC_MESSAGES/messages.po").open("rb") as f:
        catalogue = read_po(f)
    translated = {
        m.id for m in catalogue if m.id and m.string and all(m.string if isinstance(m.string, tuple) else [m.string])
    }
    assert sorted(str(m) for m in wanted - translated) == []


def test_pages_are_chinese_by_default_and_english_on_request(client, auth, session):
    auth.login(UserFactory())
    assert "今日消费" in client.get("/").get_data(as_text=True)
    response = client.get("/lang/en?next=/console")
    assert response.headers["Location"] == "/console"
    assert "Spent today" in client.get("/").get_data(as_text=True)


def test_language_switch_ignores_unknown_languages_and_foreign_next(client, session):
    response = client.get("/lang/xx?next=https://evil.example/")
    assert response.headers["Location"] == "/"
    assert "lang=" not in response.headers.get("Set-Cookie", "")


def test_route_docstrings_are_extracted_as_the_api_docs_page_looks_them_up():
    """The summary and description of a route with a contract, cut as spectree cuts them and stripped
    as the page strips them (an indented first paragraph, a \\f and what follows it); other functions'
    docstrings are not messages."""
    source = b'''
@bp.get("/x")
@contract(ok={200: None}, tag="t")
def x():
    """Summary line
    continued.

        curl -X POST /api/x

    Then it answers.
    \\f
    Notes for us.
    """


def helper():
    """Not for the catalogue."""
'''
    found = [message for _, _, message, _ in extract_blueprint(io.BytesIO(source), DEFAULT_KEYWORDS, [], {})]
    assert found == ["Summary line continued.", "curl -X POST /api/x\n\nThen it answers."]
