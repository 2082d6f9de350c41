"""Static files (the app's and Bootstrap-Flask's): fingerprinted URLs cached for a year, ETags for the
rest, gzip for text.

`url_for('static', filename=...)` (and Bootstrap-Flask's `load_css`, which calls
`url_for('bootstrap.static', ...)`) appends `?v=<hash of the content>`: a request carrying the
current hash is answered `Cache-Control: public, max-age=31536000, immutable`, since a change of the
file changes its URL; any other request is `no-cache` with an ETag, answered 304 when unchanged.
Text files go gzipped to a browser that accepts it: Bootstrap's CSS is 227 KiB as it is, 31 KiB so.
"""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
import os
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, abort, request, send_from_directory
from werkzeug.security import safe_join

STATIC_ENDPOINTS = ("static", "bootstrap.static")
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
COMPRESSIBLE = ("text/", "application/javascript", "application/json", "image/svg+xml")
KEPT_BYTES = 1024 * 1024  # files up to this size are kept in memory; bigger ones are sent from disk


@dataclass(frozen=True)
class Asset:
    stamp: tuple[int, int]  # mtime_ns, size: the file as it was read
    data: bytes
    gzipped: bytes | None
    fingerprint: str
    mimetype: str
    modified: datetime


class Assets:
    """The static files read so far, each read (hashed, compressed) again when it changes on disk."""

    def __init__(self) -> None:
        self._kept: dict[str, Asset] = {}
        self._lock = threading.Lock()

    def get(self, path: str) -> Asset | None:
        """The file at `path`, or None when it is missing or too big to keep."""
        try:
            st = os.stat(path)
        except OSError:
            return None
        if not os.path.isfile(path) or st.st_size > KEPT_BYTES:
            return None
        stamp = (st.st_mtime_ns, st.st_size)
        asset = self._kept.get(path)
        if asset is None or asset.stamp != stamp:
            asset = self._read(path, stamp)
            with self._lock:
                self._kept[path] = asset
        return asset

    @staticmethod
    def _read(path: str, stamp: tuple[int, int]) -> Asset:
        with open(path, "rb") as f:
            data = f.read()
        mimetype = mimetypes.guess_type(path)[0] or "application/octet-stream"
        compress = mimetype.startswith(COMPRESSIBLE) and len(data) > 256
        return Asset(
            stamp=stamp,
            data=data,
            gzipped=gzip.compress(data, compresslevel=9, mtime=0) if compress else None,
            fingerprint=hashlib.sha256(data).hexdigest()[:12],
            mimetype=mimetype,
            modified=datetime.fromtimestamp(stamp[0] / 1e9, UTC),
        )


def _folder(app: Flask, endpoint: str) -> str | None:
    if endpoint == "static":
        return app.static_folder
    blueprint = app.blueprints.get(endpoint.rpartition(".")[0])
    return blueprint.static_folder if blueprint else None


def _serve(app: Flask, assets: Assets, endpoint: str, filename: str) -> Response:
    folder = _folder(app, endpoint)
    path = safe_join(folder, filename) if folder else None
    if path is None:
        abort(404)
    asset = assets.get(path)
    if asset is None:  # missing (404), or too big to keep: from disk, with Werkzeug's ETag
        response = send_from_directory(folder, filename, max_age=None)
        response.headers["Cache-Control"] = REVALIDATE
        return response
    zipped = asset.gzipped is not None and request.accept_encodings["gzip"] > 0
    response = Response(asset.gzipped if zipped else asset.data, mimetype=asset.mimetype)
    response.set_etag(asset.fingerprint + ("-gz" if zipped else ""))
    response.last_modified = asset.modified
    if asset.gzipped is not None:
        response.vary.add("Accept-Encoding")
    if zipped:
        response.content_encoding = "gzip"
    fingerprinted = request.args.get("v") == asset.fingerprint
    response.headers["Cache-Control"] = IMMUTABLE if fingerprinted else REVALIDATE
    return response.make_conditional(request)


def init_app(app: Flask) -> None:
    assets = Assets()

    @app.url_defaults
    def _fingerprint(endpoint: str, values: dict[str, Any]) -> None:
        if endpoint not in STATIC_ENDPOINTS or "v" in values or not values.get("filename"):
            return
        folder = _folder(app, endpoint)
        path = safe_join(folder, values["filename"]) if folder else None
        asset = assets.get(path) if path else None
        if asset is not None:
            values["v"] = asset.fingerprint

    for endpoint in STATIC_ENDPOINTS:
        if endpoint in app.view_functions:
            app.view_functions[endpoint] = lambda filename, _endpoint=endpoint: _serve(app, assets, _endpoint, filename)
