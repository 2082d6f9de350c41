"""Reading requests (ledger/web/parsing.py): pages take web forms only, a file is never text, and
`next=` only ever leads to a path on this site."""

import io

import pytest
from sqlalchemy import select

from ledger.models import AuditLog
from tests.factories import PASSWORD, UserFactory


@pytest.mark.parametrize(
    ("path", "fields"),
    [
        ("/login", {"email": "a@example.com", "password": ["x"]}),
        ("/register", {"email": "a@example.com", "password": 12345678, "invite": None}),
        ("/security/password", {"current": {"x": 1}, "new": "n" * 9, "confirm": "n" * 9}),
        ("/account", {"full_name": ["爱丽丝"], "website": 1}),
        ("/invites", {"code": "abc"}),
        ("/recharge", {"amount": "10"}),
        ("/console/run", {"model": "chat-pro"}),
    ],
)
def test_json_sent_to_a_page_form_is_415_and_writes_nothing(client, auth, session, path, fields):
    auth.login(UserFactory())
    before = session.scalar(select(AuditLog.id).order_by(AuditLog.id.desc()).limit(1))
    response = client.post(path, json=fields, headers={"X-CSRFToken": auth.csrf_token("/")})
    assert response.status_code == 415
    assert "请以网页表单提交" in response.get_data(as_text=True)
    assert session.scalar(select(AuditLog.id).order_by(AuditLog.id.desc()).limit(1)) == before


@pytest.mark.parametrize(
    ("path", "field"),
    [("/login", "email"), ("/register", "email"), ("/account", "website"), ("/security/password", "current")],
)
def test_a_file_sent_in_a_text_field_is_a_plain_refusal(client, auth, session, path, field):
    if path in ("/login", "/register"):
        token = auth.csrf_token(path)
    else:
        auth.login(UserFactory())
        token = auth.csrf_token("/security")
    data = {"csrf_token": token, field: (io.BytesIO(b"x"), "x.txt")}
    response = client.post(path, data=data, content_type="multipart/form-data")
    # The file is not taken as text: the field is empty (a profile may leave the website empty).
    assert response.status_code == (302 if path == "/account" else 422)


@pytest.mark.parametrize(
    "target",
    [
        "/x\r\nSet-Cookie: stolen=1",
        "/x\nLocation: https://evil.example/",
        "/usage\x00",
        "/usage\t",
        "https://evil.example/",
        "//evil.example/",
    ],
)
def test_next_with_control_characters_or_another_site_falls_back_to_the_dashboard(client, session, target):
    switched = client.get("/lang/en", query_string={"next": target})
    assert (switched.status_code, switched.headers["Location"]) == (302, "/")
    assert "stolen" not in switched.headers.get("Set-Cookie", "")

    user = UserFactory()
    token = client.get("/login").get_data(as_text=True).split('name="csrf-token" content="')[1].split('"')[0]
    signed_in = client.post(
        "/login", query_string={"next": target}, data={"email": user.email, "password": PASSWORD, "csrf_token": token}
    )
    assert (signed_in.status_code, signed_in.headers["Location"]) == (302, "/")


def test_next_within_the_site_is_followed(client, session):
    assert client.get("/lang/en?next=/usage?from=2026-01-01").headers["Location"] == "/usage?from=2026-01-01"
