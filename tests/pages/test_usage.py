"""/usage: totals, the chart, models, details and the CSV link for a range."""

from datetime import timedelta
from decimal import Decimal

from tests.factories import UsageFactory
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
