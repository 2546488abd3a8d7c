"""Inline SVG plots drawn by hand from numbers: no plotting library, no JavaScript, no URL.

Pure drawing: each function takes series of numbers and labels and returns an ``<svg>`` string; what
the numbers mean and where a plot goes on a page is :mod:`ehrpredict.reporting.html`'s business. The
SVG carries no ``xmlns`` attribute (HTML5 does not need one) and every text is escaped.

    >>> svg = unit_plot("demo", [Series("model", "#0072b2", (0.0, 0.5, 1.0), (0.0, 0.8, 1.0))],
    ...                 ("false-positive rate", "true-positive rate"), diagonal=True)
    >>> svg.startswith('<svg viewBox="0 0 300 250"') and svg.count("<polyline") == 1
    True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape
from typing import NamedTuple

# Okabe-Ito colours (distinguishable with the common colour-vision deficiencies); black is the oracle's.
PALETTE = ("#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#7f7f7f")
ORACLE_COLOR = "#000000"
DASH = ' stroke-dasharray="5 3"'
GRID = "#e4e4e4"

Ticks = list[tuple[float, str]]


def colors(n: int) -> list[str]:
    """The palette's first ``n`` colours, repeating when there are more lines than colours."""
    return [PALETTE[i % len(PALETTE)] for i in range(n)]


class Series(NamedTuple):
    """One line (or set of points) on a plot, in data coordinates."""

    label: str
    color: str
    xs: Sequence[float]
    ys: Sequence[float]
    dashed: bool = False
    markers: bool = False
    sd: Sequence[float] | None = None  # vertical error bars, ± this much at each point


class Frame(NamedTuple):
    """Data ranges [x0, x1] × [y0, y1] mapped into a width × height pixel box inside its margins."""

    x0: float
    x1: float
    y0: float
    y1: float
    width: int = 300
    height: int = 250
    left: int = 46
    top: int = 8
    right: int = 12
    bottom: int = 38

    def x(self, value: float) -> float:
        return self.left + (value - self.x0) / (self.x1 - self.x0) * (self.width - self.left - self.right)

    def y(self, value: float) -> float:
        return self.height - self.bottom - (value - self.y0) / (self.y1 - self.y0) * (
            self.height - self.top - self.bottom
        )

    def point(self, x: float, y: float) -> str:
        return f"{self.x(x):.1f},{self.y(y):.1f}"


def ticks(low: float, high: float, step: float) -> Ticks:
    count = round((high - low) / step)
    return [(low + i * step, f"{round(low + i * step, 2):g}") for i in range(count + 1)]


def svg(frame: Frame, label: str, content: str, x_ticks: Ticks, y_ticks: Ticks, x_label: str, y_label: str) -> str:
    """An ``<svg>`` with grid, tick labels and axis titles around ``content`` (already SVG)."""
    bottom, top = frame.y(frame.y0), frame.y(frame.y1)
    left, right = frame.x(frame.x0), frame.x(frame.x1)
    grid = []
    for value, text in x_ticks:
        x = frame.x(value)
        grid.append(f'<line x1="{x:.1f}" y1="{top:.1f}" x2="{x:.1f}" y2="{bottom:.1f}" stroke="{GRID}"/>'
                    f'<text x="{x:.1f}" y="{bottom + 13:.1f}" text-anchor="middle">{escape(text)}</text>')
    for value, text in y_ticks:
        y = frame.y(value)
        grid.append(f'<line x1="{left:.1f}" y1="{y:.1f}" x2="{right:.1f}" y2="{y:.1f}" stroke="{GRID}"/>'
                    f'<text x="{left - 4:.1f}" y="{y + 3:.1f}" text-anchor="end">{escape(text)}</text>')
    box = (f'<rect x="{left:.1f}" y="{top:.1f}" width="{right - left:.1f}" height="{bottom - top:.1f}" '
           f'fill="none" stroke="#999"/>')
    titles = f'<text x="{(left + right) / 2:.1f}" y="{frame.height - 4}" text-anchor="middle">{escape(x_label)}</text>'
    if y_label:
        titles += (f'<text transform="translate(11 {(top + bottom) / 2:.1f}) rotate(-90)" text-anchor="middle">'
                   f"{escape(y_label)}</text>")
    return (f'<svg viewBox="0 0 {frame.width} {frame.height}" width="{frame.width}" height="{frame.height}" '
            f'role="img" aria-label="{escape(label)}"><title>{escape(label)}</title>'
            f"{''.join(grid)}{box}{content}{titles}</svg>")


def draw(frame: Frame, series: Series) -> str:
    dash = DASH if series.dashed else ""
    points = " ".join(frame.point(x, y) for x, y in zip(series.xs, series.ys, strict=True))
    parts = [f'<polyline fill="none" stroke="{series.color}" stroke-width="1.6"{dash} points="{points}">'
             f"<title>{escape(series.label)}</title></polyline>"]
    if series.sd is not None:
        for x, y, sd in zip(series.xs, series.ys, series.sd, strict=True):
            px = frame.x(x)
            parts.append(f'<line x1="{px:.1f}" y1="{frame.y(max(y - sd, frame.y0)):.1f}" x2="{px:.1f}" '
                         f'y2="{frame.y(min(y + sd, frame.y1)):.1f}" stroke="{series.color}"/>')
    if series.markers:
        parts.extend(f'<circle cx="{frame.x(x):.1f}" cy="{frame.y(y):.1f}" r="2.5" fill="{series.color}"/>'
                     for x, y in zip(series.xs, series.ys, strict=True))
    return "".join(parts)


def reference(frame: Frame, x1: float, y1: float, x2: float, y2: float) -> str:
    """A dashed grey reference line (chance, perfect calibration, prevalence) in data coordinates."""
    return (f'<line x1="{frame.x(x1):.1f}" y1="{frame.y(y1):.1f}" x2="{frame.x(x2):.1f}" y2="{frame.y(y2):.1f}" '
            f'stroke="#aaa"{DASH}/>')


def unit_plot(label: str, series: Sequence[Series], axes: tuple[str, str], *, diagonal: bool = False,
              level: float | None = None) -> str:
    """Lines on the unit square (ROC, precision-recall, calibration) over a dashed reference: the
    diagonal, or a horizontal line at ``level`` (e.g. the prevalence, a random ranking's precision)."""
    frame = Frame(0.0, 1.0, 0.0, 1.0)
    lines = reference(frame, 0.0, 0.0, 1.0, 1.0) if diagonal else ""
    if level is not None:
        lines += reference(frame, 0.0, level, 1.0, level)
    lines += "".join(draw(frame, s) for s in series)
    unit = ticks(0.0, 1.0, 0.2)
    return svg(frame, label, lines, unit, unit, *axes)


class KCurve(NamedTuple):
    """A score against k (``means`` ± ``sds`` at each of ``ks``), one line of :func:`k_plot`."""

    label: str
    color: str
    ks: Sequence[int]
    means: Sequence[float]
    sds: Sequence[float]


def k_plot(label: str, curves: Sequence[KCurve], axes: tuple[str, str]) -> str:
    """Mean (± SD error bars) against k on a log2 axis, one line per curve, dodged sideways so the bars
    do not overlap; the y range covers every bar and 0.5, and a dashed line marks 0.5 (chance AUROC)."""
    ks = sorted({k for c in curves for k in c.ks})
    low = min(0.5, *(m - s for c in curves for m, s in zip(c.means, c.sds, strict=True)))
    high = max(m + s for c in curves for m, s in zip(c.means, c.sds, strict=True))
    y0 = math.floor(low * 10 + 1e-9) / 10
    y1 = min(1.0, max(math.ceil(high * 10 - 1e-9) / 10, y0 + 0.2))
    x0, x1 = math.log2(ks[0]) - 0.4, math.log2(ks[-1]) + 0.4
    frame = Frame(x0, x1, y0, y1)
    lines = [reference(frame, x0, 0.5, x1, 0.5)]  # y0 <= 0.5 by construction
    for j, curve in enumerate(curves):
        dodge = (j - (len(curves) - 1) / 2) * 0.08
        lines.append(draw(frame, Series(curve.label, curve.color, [math.log2(k) + dodge for k in curve.ks],
                                        list(curve.means), markers=True, sd=list(curve.sds))))
    x_ticks = [(math.log2(k), str(k)) for k in ks]
    y_ticks = ticks(y0, y1, 0.1 if y1 - y0 <= 0.6 else 0.2)
    return svg(frame, label, "".join(lines), x_ticks, y_ticks, *axes)


class Interval(NamedTuple):
    """A point estimate with its interval, drawn as a dot on a whisker."""

    color: str
    value: float
    low: float
    high: float


def forest_plot(label: str, rows: Sequence[tuple[str, Sequence[Interval]]], slots: int, x_label: str) -> str:
    """One row per label with its intervals dodged vertically within the row (``slots``: how many a
    row can hold, so rows keep one height), on an x axis from at most 0.5 to 1 with chance (0.5) dashed."""
    x0 = min(0.5, *(i.low for _, marks in rows for i in marks))
    x0 = math.floor(x0 * 10 + 1e-9) / 10
    band = 10 + 7 * slots
    frame = Frame(x0, 1.0, 0.0, float(len(rows)), width=440, height=len(rows) * band + 46, left=150)
    parts = [reference(frame, 0.5, 0.0, 0.5, float(len(rows)))]  # x0 <= 0.5 by construction
    for i, (_, marks) in enumerate(rows):
        for j, mark in enumerate(marks):
            y = frame.y(len(rows) - i - 0.5 - (j - (len(marks) - 1) / 2) * 7 / band)
            parts.append(f'<line x1="{frame.x(mark.low):.1f}" y1="{y:.1f}" x2="{frame.x(mark.high):.1f}" '
                         f'y2="{y:.1f}" stroke="{mark.color}" stroke-width="1.5"/>'
                         f'<circle cx="{frame.x(mark.value):.1f}" cy="{y:.1f}" r="3" fill="{mark.color}"/>')
    y_ticks = [(len(rows) - i - 0.5, row_label) for i, (row_label, _) in enumerate(rows)]
    x_ticks = ticks(x0, 1.0, 0.1 if 1.0 - x0 <= 0.6 else 0.2)
    return svg(frame, label, "".join(parts), x_ticks, y_ticks, x_label, "")
