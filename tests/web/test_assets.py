"""Static files (ledger/web/assets.py): only the JavaScript a page uses, fingerprinted URLs cached for
a year, ETags for the rest, gzip for text, and every main page under 150 KiB on its first load."""

import gzip
import hashlib
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import flask_bootstrap
import pytest

from tests.factories import PaymentFactory, UsageFactory, UserFactory

STATIC = Path(__file__).resolve().parents[2] / "ledger" / "static"
TEMPLATES = Path(__file__).resolve().parents[2] / "ledger"
BOOTSTRAP_CSS = Path(flask_bootstrap.__file__).parent / "static" / "bootstrap5" / "css" / "bootstrap.min.css"
PAGE_BUDGET = 150 * 1024


def fingerprint(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def test_no_template_uses_bootstrap_javascript_and_no_page_loads_it(client, me):
    # Bootstrap's JS drives only its components: none is used (data-bs-theme is CSS, not JavaScript).
    for template in TEMPLATES.rglob("*.html"):
        text = template.read_text()
        assert not re.search(r"data-bs-(?!theme)[a-z-]+=", text), template
        assert "load_js" not in text and "bootstrap.min.js" not in text, template
    for script in (STATIC / "js").glob("*.js"):
        assert "bootstrap." not in script.read_text(), script
    for path in ["/", "/recharge", "/console", "/usage", "/invites", "/account", "/security"]:
        page = client.get(path).get_data(as_text=True)
        assert "bootstrap.min.js" not in page and "popper" not in page, path


def test_static_urls_carry_the_hash_of_the_content(client, me):
    page = client.get("/").get_data(as_text=True)
    assert f'href="/static/css/app.css?v={fingerprint(STATIC / "css" / "app.css")}"' in page
    assert f'href="/bootstrap/static/css/bootstrap.min.css?v={fingerprint(BOOTSTRAP_CSS)}"' in page
    assert f'src="/static/favicon.svg?v={fingerprint(STATIC / "favicon.svg")}"' in page


@pytest.mark.parametrize(
    "path",
    [
        "/static/css/app.css?v={}",
        "/static/js/copy.js?v={}",
        "/bootstrap/static/css/bootstrap.min.css?v={}",
    ],
)
def test_a_fingerprinted_file_is_cached_for_a_year(client, path):
    file = {
        "/static/css/app.css?v={}": STATIC / "css" / "app.css",
        "/static/js/copy.js?v={}": STATIC / "js" / "copy.js",
        "/bootstrap/static/css/bootstrap.min.css?v={}": BOOTSTRAP_CSS,
    }[path]
    response = client.get(path.format(fingerprint(file)))
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert response.headers["ETag"] == f'"{fingerprint(file)}"'
    assert response.data == file.read_bytes()


def test_signed_in_the_files_are_still_cached(client, me):
    # Pages of a signed-in person are private, no-store; the static files are the same for everyone.
    url = f"/static/css/app.css?v={fingerprint(STATIC / 'css' / 'app.css')}"
    assert client.get(url).headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert client.get("/").headers["Cache-Control"] == "private, no-store"


def test_without_the_current_hash_a_file_is_revalidated_by_its_etag(client):
    etag = f'"{fingerprint(STATIC / "css" / "app.css")}"'
    for url in ["/static/css/app.css", "/static/css/app.css?v=0123456789ab"]:
        response = client.get(url)
        assert response.status_code == 200
        assert response.headers["Cache-Control"] == "no-cache"
        assert response.headers["ETag"] == etag
    again = client.get("/static/css/app.css", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b""


def test_text_goes_gzipped_to_a_browser_that_accepts_it(client):
    url = f"/bootstrap/static/css/bootstrap.min.css?v={fingerprint(BOOTSTRAP_CSS)}"
    response = client.get(url, headers={"Accept-Encoding": "gzip, deflate, br"})
    assert response.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in response.headers["Vary"]
    assert response.headers["ETag"] == f'"{fingerprint(BOOTSTRAP_CSS)}-gz"'
    assert response.headers["Content-Type"] == "text/css; charset=utf-8"
    assert gzip.decompress(response.data) == BOOTSTRAP_CSS.read_bytes()
    assert len(response.data) < 40 * 1024 < BOOTSTRAP_CSS.stat().st_size
    plain = client.get(url)
    assert "Content-Encoding" not in plain.headers and plain.data == BOOTSTRAP_CSS.read_bytes()


def test_a_missing_file_or_a_path_outside_the_folder_is_404(client):
    assert client.get("/static/css/nothing.css").status_code == 404
    assert client.get("/static/../__init__.py").status_code == 404
    assert client.get("/static/%2e%2e/__init__.py").status_code == 404


class Assets(HTMLParser):
    """What a browser fetches for a page: stylesheets, icons, scripts, images."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        if tag == "link" and a.get("rel") in ("stylesheet", "icon") and a.get("href"):
            self.urls.append(a["href"])
        elif tag in ("script", "img") and a.get("src"):
            self.urls.append(a["src"])


def first_load_bytes(client, path: str) -> tuple[int, dict[str, int]]:
    """The bytes a browser receives loading `path` with an empty cache (gzip accepted)."""
    headers = {"Accept-Encoding": "gzip, deflate, br"}
    page = client.get(path, headers=headers)
    assert page.status_code == 200, path
    parser = Assets()
    parser.feed(page.get_data(as_text=True))
    sizes = {path: len(page.data)}
    for url in dict.fromkeys(parser.urls):
        asset = client.get(url, headers=headers)
        assert asset.status_code == 200, url
        assert not urlsplit(url).netloc, url
        sizes[url] = len(asset.data)
    return sum(sizes.values()), sizes


def test_every_main_page_weighs_under_150_kib_on_first_load(client, auth, session):
    user = UserFactory(balance="100.00", is_admin=True)
    order = PaymentFactory(user=user)
    for i in range(30):
        UsageFactory(user=user, model="image-studio-v2", params={"n": i}, request_id=f"weight-{i}")
    signed_out = ["/login", "/register"]
    signed_in = ["/", "/recharge", f"/recharge/{order.id}", "/console", "/usage", "/invites", "/account", "/security"]
    signed_in += ["/admin", "/admin/users", "/admin/orders"]
    weights = {path: first_load_bytes(client, path) for path in signed_out}
    auth.login(user)
    weights |= {path: first_load_bytes(client, path) for path in signed_in}
    heavy = {path: sizes for path, (total, sizes) in weights.items() if total >= PAGE_BUDGET}
    assert heavy == {}
    # Bootstrap's stylesheet is most of it, gzipped; no Bootstrap JavaScript among the assets.
    assert all("bootstrap.min.js" not in url for _, sizes in weights.values() for url in sizes)
