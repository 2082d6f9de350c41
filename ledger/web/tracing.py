"""Every request gets a request id (the client's X-Request-ID when well formed, else a new one),
echoed in the answer, bound for the audit rows and jobs it causes, and one JSON log line at its
end: who (person or service), route, status, duration (SPEC 18)."""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import Flask, Response, g, request

from ledger.logs import bind_request_id, request_id_from, unbind_request_id
from ledger.metrics import count_request

log = logging.getLogger("ledger.requests")

PORTAL = "/portal/"  # its tokens sign people in: never in a log line


def init_app(app: Flask) -> None:
    @app.before_request
    def _begin() -> None:
        g.started = time.perf_counter()
        g.request_id = request_id_from(request.headers.get("X-Request-ID"))
        g.request_id_token = bind_request_id(g.request_id)

    @app.after_request
    def _answer(response: Response) -> Response:
        request_id = g.get("request_id")
        if request_id:
            response.headers["X-Request-ID"] = request_id
            seconds = time.perf_counter() - g.started
            route = request.url_rule.rule if request.url_rule else "<no route>"  # a 404's path is not a label
            log.info("request", extra={"request_id": request_id, "fields": _fields(response.status_code, seconds)})
            count_request(request.method, route, response.status_code, seconds)
        return response

    @app.teardown_request
    def _end(_: BaseException | None) -> None:
        token = g.pop("request_id_token", None)
        if token is not None:
            unbind_request_id(token)


def _fields(status: int, seconds: float) -> dict[str, Any]:
    return {
        "method": request.method,
        "route": request.url_rule.rule if request.url_rule else None,
        "path": PORTAL + "<token>" if request.path.startswith(PORTAL) else request.path,  # a live sign-in link
        "status": status,
        "duration_ms": round(seconds * 1000, 2),
        "who": _who(),
        "ip": request.remote_addr,
    }


def _who() -> str | None:
    """The signed-in person's id, "internal" for a service of the SaaS, else nothing. Reads only
    what the request already loaded (an internal call loads no user)."""
    if g.get("internal"):
        return "internal"
    user = g.get("_login_user")  # Flask-Login's cache: set only if something asked for the user
    return str(user.id) if user is not None and getattr(user, "is_authenticated", False) else None
