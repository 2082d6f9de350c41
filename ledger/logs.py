"""Logs as JSON lines (SPEC 18), and the request id that ties together what one request caused: its
log line, the audit rows and events it writes, and the jobs it queues (which log under the same id).

The id lives in a context variable: the web layer binds it for a request (ledger.web.tracing), a
job for its run (ledger.jobs); `audit_row` and the event outbox read it from here.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from urllib.parse import unquote, urlsplit, urlunsplit

from requests.utils import requote_uri

REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
_request_id: ContextVar[str | None] = ContextVar("ledger_request_id", default=None)


def current_request_id() -> str | None:
    """The id of the request (or job) being served, if any."""
    return _request_id.get()


def request_id_from(given: str | None) -> str:
    """A client's X-Request-ID when it is 1-128 of A-Za-z0-9._- , else a new one."""
    if given and REQUEST_ID.fullmatch(given):
        return given
    return uuid.uuid4().hex


@contextmanager
def bound_request_id(request_id: str | None) -> Iterator[None]:
    """Serve under `request_id` (a job run under the id of the request that queued it)."""
    token = _request_id.set(request_id)
    try:
        yield
    finally:
        _request_id.reset(token)


def bind_request_id(request_id: str | None) -> object:
    """Bind for the rest of a request; hand the returned token to `unbind_request_id` at its end."""
    return _request_id.set(request_id)


def unbind_request_id(token: object) -> None:
    _request_id.reset(token)  # type: ignore[arg-type]


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC), level, logger, message, the request id, and the fields a
    caller passes as `extra={"fields": {...}}`."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or current_request_id()
        if request_id:
            line["request_id"] = request_id
        line.update(getattr(record, "fields", None) or {})
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class WithoutAccessLines(logging.Filter):
    """Drops the development server's (werkzeug's) own line for each request: the JSON line of
    ledger.requests already tells of it. Its other lines stay: the address it runs on, its errors."""

    # The message werkzeug's request handler logs every request with (WSGIRequestHandler.log_request):
    # '<client> - - [<date>] "<method> <path> <version>" <status> <size>'.
    ACCESS_LINE = '"%s" %s %s'

    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.msg, str) and record.msg.endswith(self.ACCESS_LINE))


WITHOUT_ACCESS_LINES = WithoutAccessLines()


def configure_logging(*, everything: bool = False, level: int = logging.INFO) -> None:
    """Ledger's loggers (with `everything`, every logger: the worker's procrastinate lines too)
    write JSON lines to stderr, which the server (granian, gunicorn) and the worker pass on; once per process. Tests
    leave them to propagate to pytest's capture instead. Under `make run` (werkzeug), each request is
    logged once, by that JSON line: werkzeug's own access line is dropped, its start-up lines kept."""
    logging.getLogger("werkzeug").addFilter(WITHOUT_ACCESS_LINES)  # added once: the same filter
    logger = logging.getLogger(None if everything else "ledger")
    if any(isinstance(h.formatter, JsonFormatter) for h in logger.handlers):
        return
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    logger.setLevel(level)
    if not everything:
        logger.propagate = False


def redacted_url(url: str) -> str:
    """`url` as logs may show it: its scheme, host and port alone. Tokens travel in the
    credentials (user:password@), the query, the fragment and, for many webhooks, the path
    (`https://hooks.example/T0/B0/secret`). `http://u:p@host:8080/hook?token=x#y` gives
    `http://host:8080`."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(a URL that does not parse)"
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], "", "", ""))


# A secret shorter than this, quoted on its own, is left alone: replacing "p" would cut words up.
SHORTEST_SECRET = 6


def without_url_secrets(text: str, url: str) -> str:
    """`text` (an HTTP library's error, say) with `url`'s credentials, path, query and fragment
    taken out wherever it quotes them: the whole URL, or the path and query it asked for, as given
    or percent-encoded as requests sends them. The path reads `/…`."""
    try:
        forms = [urlsplit(form) for form in dict.fromkeys((url, requote_uri(url)))]
    except ValueError:
        return text.replace(url, redacted_url(url))
    for parts in forms:
        userinfo = parts.netloc.rpartition("@")[0]
        for piece in (f"{userinfo}@", f"?{parts.query}", f"#{parts.fragment}"):
            if len(piece) > 1:
                text = text.replace(piece, "")
        if parts.path not in ("", "/"):
            text = text.replace(parts.path, "/…")
        secrets = {parts.query, parts.password or "", unquote(parts.password or "")}
        for secret in {s for s in secrets if len(s) >= SHORTEST_SECRET}:
            text = text.replace(secret, "[redacted]")  # quoted some other way
    return text
