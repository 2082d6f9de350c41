"""/usage: totals, the chart, models, details and the CSV link for a range."""

from datetime import timedelta
from decimal import Decimal

import pytest

from tests.factories import UsageFactory, UserFactory
from tests.helpers import at


def test_usage_page_shows_totals_chart_models_details_and_csv_link(client, session, me):
    for n in range(30):
        UsageFactory(
            user=me,
            model="chat-pro" if n % 2 else "image-studio-v2",
            amount=Decimal("0.50"),
            created_at=at("2026-03-05 10:00:00") + timedelta(minutes=n),
        )
    page = client.get("/usage?from=2026-03-01&to=2026-03-31&model=chat-pro").get_data(as_text=True)
    assert 'data-testid="total-amount">' in page and "¥7.50" in page
    assert page.count('class="chart-bar"') == 31
    assert "/api/usage/report?format=csv&amp;from=2026-03-01&amp;to=2026-03-31&amp;model=chat-pro" in page
    assert 'data-testid="older"' not in page  # 15 rows fit on a page of 25
    everything = client.get("/usage?from=2026-03-01&to=2026-03-31").get_data(as_text=True)
    assert 'data-testid="older"' in everything


def test_usage_page_with_a_bad_range_says_so(client, session, me):
    response = client.get("/usage?from=2026-03-05&to=2026-03-01")
    assert response.status_code == 422
    assert 'data-testid="range-error"' in response.get_data(as_text=True)


def test_usage_names_models_as_the_console_does_not_by_their_ids(client, session, me):
    UsageFactory(user=me, model="image-studio-v2", amount=Decimal("0.20"), params={"resolution": "2048", "images": 2})
    UsageFactory(user=me, model="retired-model", amount=Decimal("0.10"), params={"size": "xl"})
    for path in ("/usage", "/"):
        page = client.get(path).get_data(as_text=True)
        assert "Image Studio v2" in page and "<code>image-studio-v2</code>" not in page, path
        assert "retired-model" in page, path  # a model no longer offered keeps its id
    details = client.get("/usage").get_data(as_text=True)
    assert "分辨率: 2048 × 2048 · 张数: 2" in details and "resolution=2048" not in details
    assert "size: xl" in details


# Params are the SaaS's data, sent as it likes through the internal API (SPEC 6): a page prints them
# as text. Through gettext they were %-formatted (a KeyError for ever on /usage) and marked safe HTML.
HOSTILE_PARAMS = {
    "k": "%(x)s",
    "d": "%d",
    "note": '<a href=https://evil.example/pay>Top up here</a><meta http-equiv=refresh content="5;url=https://evil.example">',
    "nested": {"<b>": ["%s", 1]},
}


@pytest.fixture
def payer(auth, session):
    """A signed-in person with money to be charged through the API."""
    user = UserFactory(balance="10.00")
    auth.login(user)
    return user


def charge_with_params(client, internal_headers, user, model, params, request_id="hostile-1"):
    body = {"user_id": str(user.id), "amount": "0.10", "model": model, "request_id": request_id, "params": params}
    assert client.post("/api/billing/deduct", json=body, headers=internal_headers).status_code == 200


@pytest.mark.parametrize("language", ["zh", "en"])
@pytest.mark.parametrize("model", ["someones-model", "image-studio-v2", "chat-pro"])
def test_usage_prints_hostile_params_as_text_in_either_language(client, payer, internal_headers, language, model):
    # A console model's id with params the console never makes is data too, not a console run.
    client.set_cookie("lang", language)
    charge_with_params(client, internal_headers, payer, model, HOSTILE_PARAMS)
    response = client.get("/usage")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "<meta http-equiv" not in page and "<a href=https://evil.example" not in page
    assert "<b>" not in page  # (JSONB keeps keys shortest first)
    assert (
        "d: %d · k: %(x)s · note: &lt;a href=https://evil.example/pay&gt;Top up here&lt;/a&gt;"
        "&lt;meta http-equiv=refresh content=&#34;5;url=https://evil.example&#34;&gt;"
        " · nested: {&#34;&lt;b&gt;&#34;: [&#34;%s&#34;, 1]}</span></td>"
    ) in page


@pytest.mark.parametrize(
    "language, shown", [("zh", "分辨率: 2048 × 2048 · 张数: 2"), ("en", "Resolution: 2048 × 2048 · Images: 2")]
)
def test_usage_translates_only_the_consoles_own_labels(client, payer, internal_headers, language, shown):
    client.set_cookie("lang", language)
    charge_with_params(client, internal_headers, payer, "image-studio-v2", {"resolution": "2048", "images": 2})
    # Words that have a translation stay as sent when they are data: "Images" is not 张数 here.
    charge_with_params(client, internal_headers, payer, "other", {"Images": "Resolution"}, request_id="r-2")
    page = client.get("/usage").get_data(as_text=True)
    assert shown in page
    assert "Images: Resolution</span></td>" in page
