"""Server-rendered bar charts (inline SVG): no JavaScript, no asset from another site."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import ROUND_CEILING, Decimal


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    day: date
    value: Decimal


@dataclass(frozen=True)
class BarChart:
    width: int
    height: int
    top: Decimal  # the value of the top gridline
    bars: list[Bar]
    labels: list[tuple[float, date, str]]  # a few dates along the x axis: x, day, text-anchor
    baseline: float


def _nice_ceiling(value: Decimal) -> Decimal:
    """A round number at or above `value` for the top of the axis (1, 2, 5 x 10^n)."""
    if value <= 0:
        return Decimal(1)
    exponent = value.adjusted()
    for step in (1, 2, 5, 10):
        top = Decimal(step).scaleb(exponent)
        if top >= value:
            return top.quantize(Decimal(1), rounding=ROUND_CEILING) if top >= 1 else top
    return Decimal(10).scaleb(exponent)


def bar_chart(series: list[tuple[date, Decimal]], *, width: int = 720, height: int = 180, labels: int = 6) -> BarChart:
    """Lay out one bar per day of `series`, scaled to a round maximum."""
    plot_height = height - 24  # room for the date labels
    top = _nice_ceiling(max((v for _, v in series), default=Decimal(0)))
    slot = width / max(len(series), 1)
    gap = min(slot * 0.2, 4)
    bars = []
    for i, (day, value) in enumerate(series):
        h = float(value / top) * plot_height if top else 0.0
        h = max(h, 1.5) if value > 0 else 0.0  # a tiny spend stays visible
        bars.append(Bar(x=i * slot + gap / 2, y=plot_height - h, width=slot - gap, height=h, day=day, value=value))
    every = max(1, round(len(series) / labels))
    ticks = [(i * slot + slot / 2, day, "middle") for i, (day, _) in enumerate(series) if i % every == 0]
    if ticks:  # the first label starts at the left edge instead of being cut in half
        ticks[0] = (0.0, ticks[0][1], "start")
    return BarChart(width=width, height=height, top=top, bars=bars, labels=ticks, baseline=plot_height)
