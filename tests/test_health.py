"""GET /healthz: ok while the database answers, 503 when it does not."""


def test_healthz_answers_ok_when_the_database_answers(client):
    response = client.get("/healthz")
    assert (response.status_code, response.get_json()) == (200, {"status": "ok"})


def test_healthz_answers_503_when_the_database_does_not(settings, tmp_path):
    from dataclasses import replace

    from ledger import create_app
    from ledger.db import Database, make_engine

    dead = make_engine(f"postgresql+psycopg://postgres@/postgres?host={tmp_path}&connect_timeout=1")
    app = create_app(replace(settings), Database(dead))
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.get_json()["status"] == "unavailable"
