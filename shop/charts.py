"""Line charts of running totals over time, laid out for an inline SVG: no script, and no style
attribute (colours are SVG presentation attributes, which the CSP allows).

The shop's drop dashboard (paid units of one product) and the enrollment desk's window dashboard
(seats taken per tier) count with `running_totals` and lay out with `line_chart`;
`templates/editor/_chart.html` draws the result.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

WIDTH, HEIGHT = 640, 240
LEFT, RIGHT, TOP, BOTTOM = 44, 628, 12, 208
COLORS = ("#c2410c", "#1d4ed8", "#147a3d", "#7c3aed", "#0e7490", "#b45309")
LEGEND_HEIGHT = 22  # one row of legend below the x labels; more rows add LEGEND_ROW each
LEGEND_STEP, LEGEND_ROW, LEGEND_PER_ROW = 150, 20, 4


@dataclass(frozen=True)
class Line:
    """A running total to draw (`running_totals`); lines with a name get a colour each and a
    legend entry, `key` marking the line in the markup."""

    totals: list[int]
    key: str = ""
    name: str = ""


@dataclass(frozen=True)
class Series:
    """One line as drawn: polyline points, its last total and what the last step added."""

    points: str
    total: int
    last_step: int
    key: str
    name: str
    color: str  # empty: the stylesheet colours it
    legend_x: int
    legend_y: int


@dataclass(frozen=True)
class Chart:
    """A whole chart in SVG user units, the plot between `left`, `right`, `top` and `bottom`."""

    width: int
    height: int
    left: int
    top: int
    right: int
    bottom: int
    series: list[Series]
    area: str  # polygon points under a lone unnamed line, else empty
    y_labels: list[tuple[float, str]]
    x_labels: list[tuple[float, str, str]]  # x, text, text-anchor
    summary: str


def running_totals(
    amounts: Iterable[tuple[datetime, int]],
    *,
    start: datetime,
    steps: int,
    step_seconds: float,
    before: int = 0,
) -> list[int]:
    """The running total of `amounts` (when, how many) at `start` and at the end of each of
    `steps` equal steps from there: `steps + 1` values. Amounts before `start` add to `before`;
    those after the last step count in it."""
    counts = [0] * steps
    for at, amount in amounts:
        if at < start:
            before += amount
            continue
        counts[min(steps - 1, int((at - start).total_seconds() // step_seconds))] += amount
    totals = [before]
    for count in counts:
        totals.append(totals[-1] + count)
    return totals


def _nice_ceiling(value: int) -> int:
    """The top of the y axis: `value` rounded up to 1, 2, 2.5 or 5 times a power of ten (5 at
    least), so that its half is a round number too."""
    if value <= 5:
        return 5
    magnitude = 10 ** int(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return int(step * magnitude)
    return value


def line_chart(
    lines: list[Line], *, start: str, middle: tuple[float, str], end: str, summary: str
) -> Chart:
    """Lay out `lines` (all of the same steps) on one y axis from 0. The x axis is labelled
    `start` and `end`, and `middle` (a step, a text) when there are 4 steps or more. A lone
    line without a name is filled underneath and coloured by the stylesheet."""
    steps = len(lines[0].totals) - 1
    top = _nice_ceiling(max(line.totals[-1] for line in lines))
    plot_w, plot_h = RIGHT - LEFT, BOTTOM - TOP

    def x(i: float) -> float:
        return round(LEFT + plot_w * i / steps, 1)

    def y(value: int) -> float:
        return round(BOTTOM - plot_h * value / top, 1)

    legend = any(line.name for line in lines)
    series = [
        Series(
            points=" ".join(f"{x(i)},{y(v)}" for i, v in enumerate(line.totals)),
            total=line.totals[-1],
            last_step=line.totals[-1] - line.totals[-2],
            key=line.key,
            name=line.name,
            color=COLORS[n % len(COLORS)] if legend else "",
            legend_x=LEFT + (n % LEGEND_PER_ROW) * LEGEND_STEP,
            legend_y=HEIGHT + LEGEND_HEIGHT - 12 + (n // LEGEND_PER_ROW) * LEGEND_ROW,
        )
        for n, line in enumerate(lines)
    ]
    area = "" if legend else f"{x(0)},{BOTTOM} {series[0].points} {x(steps)},{BOTTOM}"
    x_labels = [(x(0), start, "start"), (x(steps), end, "end")]
    if steps >= 4:
        x_labels.insert(1, (x(middle[0]), middle[1], "middle"))
    height = HEIGHT
    if legend:
        height += LEGEND_HEIGHT + (len(lines) - 1) // LEGEND_PER_ROW * LEGEND_ROW
    return Chart(
        width=WIDTH,
        height=height,
        left=LEFT,
        top=TOP,
        right=RIGHT,
        bottom=BOTTOM,
        series=series,
        area=area,
        y_labels=[(y(0), "0"), (y(top // 2), str(top // 2)), (y(top), str(top))],
        x_labels=x_labels,
        summary=summary,
    )
