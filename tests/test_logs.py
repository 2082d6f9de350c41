"""What logs and stored errors may show of a URL: never its credentials, path, query or fragment;
and each request logged once under the development server."""

import logging
import threading

import pytest
import requests
from werkzeug.serving import make_server

from ledger.logs import configure_logging, redacted_url, without_url_secrets


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://user:pass@127.0.0.1:8080/hook?token=s3cret#part", "http://127.0.0.1:8080"),
        ("https://hooks.example/T000/B000/s3cretpath", "https://hooks.example"),
        ("https://key@saas.example/?t=1", "https://saas.example"),
        ("http://[::1/hook?token=s3cret", "(a URL that does not parse)"),
    ],
)
def test_a_url_is_shown_without_credentials_path_query_or_fragment(url, shown):
    assert redacted_url(url) == shown


@pytest.mark.parametrize(
    ("url", "error", "told"),
    [
        (  # requests' refused connection quotes the path and query it asked for
            "http://user:pass@127.0.0.1:9/hook?token=s3cret",
            "ConnectionError: HTTPConnectionPool(host='127.0.0.1', port=9): Max retries exceeded with url:"
            " /hook?token=s3cret (Caused by NewConnectionError('Connection refused'))",
            "ConnectionError: HTTPConnectionPool(host='127.0.0.1', port=9): Max retries exceeded with url:"
            " /… (Caused by NewConnectionError('Connection refused'))",
        ),
        (  # ... percent-encoded as requests sends it
            "http://h.test/hook?token=s3 cret&x=é",
            "ConnectionError: Max retries exceeded with url: /hook?token=s3%20cret&x=%C3%A9 (Caused by ...)",
            "ConnectionError: Max retries exceeded with url: /… (Caused by ...)",
        ),
        (  # another library's message that quotes the whole URL
            "http://user:pass@h.test/hook?token=s3cret#f",
            "InvalidSchema: No connection adapters were found for 'http://user:pass@h.test/hook?token=s3cret#f'",
            "InvalidSchema: No connection adapters were found for 'http://h.test/…'",
        ),
        (  # the secrets alone, quoted some other way
            "http://user:p%40ssw0rd@h.test/hook?token=s3cret",
            "auth p@ssw0rd failed for token=s3cret",
            "auth [redacted] failed for [redacted]",
        ),
        (  # a secret in the path, as many webhooks carry it
            "https://hooks.example/T000/B000/s3cretpath",
            "ConnectionError: Max retries exceeded with url: /T000/B000/s3cretpath (Caused by ...)",
            "ConnectionError: Max retries exceeded with url: /… (Caused by ...)",
        ),
        (  # a short query is taken out where it follows its '?', and nowhere else
            "http://h.test:9/?p",
            "ConnectionError: HTTPConnectionPool(host='h.test', port=9): url: /?p",
            "ConnectionError: HTTPConnectionPool(host='h.test', port=9): url: /",
        ),
    ],
)
def test_an_error_tells_nothing_of_the_urls_credentials_path_query_or_fragment(url, error, told):
    assert without_url_secrets(error, url) == told


@pytest.fixture
def configured_logging():
    """configure_logging() as the app runs it outside the tests, undone after."""
    ledger, werkzeug = logging.getLogger("ledger"), logging.getLogger("werkzeug")
    saved = (ledger.handlers[:], ledger.level, ledger.propagate, werkzeug.filters[:])
    configure_logging()
    ledger.propagate = True  # for caplog
    yield
    ledger.handlers[:], werkzeug.filters[:] = saved[0], saved[3]
    ledger.setLevel(saved[1])
    ledger.propagate = saved[2]


def test_the_development_server_logs_a_request_once_and_still_says_where_it_runs(configured_logging, caplog):
    def app(environ, start_response):
        logging.getLogger("ledger.requests").info("request")  # as ledger.web.tracing does
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    with caplog.at_level(logging.INFO, logger="werkzeug"):
        server.log_startup()
        thread.start()
        try:
            assert requests.get(f"http://127.0.0.1:{server.port}/page?x=1", timeout=5).text == "ok"
        finally:
            server.shutdown()
            thread.join(5)
    lines = [(r.name, r.getMessage()) for r in caplog.records]
    assert ("ledger.requests", "request") in lines
    assert not [line for name, line in lines if name == "werkzeug" and "GET /page" in line]  # no second line
    assert any(name == "werkzeug" and f"Running on http://127.0.0.1:{server.port}" in line for name, line in lines)
