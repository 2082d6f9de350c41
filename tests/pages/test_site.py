"""/: the dashboard."""

from datetime import UTC, datetime

from tests.factories import UsageFactory


def test_dashboard_shows_the_30_day_chart(client, session, me):
    UsageFactory(user=me, created_at=datetime.now(UTC))
    page = client.get("/").get_data(as_text=True)
    assert 'data-testid="spend-chart"' in page and page.count('class="chart-bar"') == 30
