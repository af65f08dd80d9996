"""The layout of the score chart on a patient's handoff page.

One small panel per score (the overall 0-10 question and the PHQ-2, GAD-2 and PHQ-9 totals),
sharing one time axis, with the patient's infusions drawn as vertical lines across every panel.
Only the geometry is computed here; the template draws it as inline SVG (no script, no inline
styles, so the page's Content-Security-Policy stays strict). Scores inform staff: the chart
draws no thresholds and makes no judgement.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

SERIES: tuple[tuple[str, str, int], ...] = (
    ("overall", "Symptoms back since last infusion (0-10)", 10),
    ("phq2", "PHQ-2 total (0-6)", 6),
    ("gad2", "GAD-2 total (0-6)", 6),
    ("phq9", "PHQ-9 total (0-27)", 27),
)
"""Each charted score: its key in :func:`bot.services.checkins.score_history`, label, maximum."""

WIDTH = 720
LEFT = 40
RIGHT = 16
PANEL_HEIGHT = 84
PANEL_GAP = 34
TOP = 22
AXIS_HEIGHT = 34
PAD_DAYS = 3
LABEL_SPACING = 14
"""Marker letters closer than this (in pixels) to the previous one are left out."""


@dataclass(frozen=True)
class Point:
    """One check-in's score."""

    x: float
    y: float
    value: int
    day: dt.date


@dataclass(frozen=True)
class Panel:
    """One score's panel: its frame, gridlines and line."""

    key: str
    label: str
    maximum: int
    top: float
    bottom: float
    points: tuple[Point, ...]
    gridlines: tuple[tuple[float, int], ...]

    @property
    def polyline(self) -> str:
        """The ``points`` attribute of the panel's line."""
        return " ".join(f"{p.x:.1f},{p.y:.1f}" for p in self.points)


@dataclass(frozen=True)
class Marker:
    """One infusion, drawn as a vertical line; ``labelled`` when its letter fits above it
    (infusions a few days apart share one letter)."""

    x: float
    day: dt.date
    kind: str
    labelled: bool = True


@dataclass(frozen=True)
class Tick:
    """One date on the time axis."""

    x: float
    label: str
    anchor: str = "middle"


@dataclass(frozen=True)
class ScoreChart:
    """The whole chart."""

    width: int
    height: int
    left: int
    right: float
    panels: tuple[Panel, ...]
    markers: tuple[Marker, ...]
    ticks: tuple[Tick, ...]
    axis_y: float

    @property
    def empty(self) -> bool:
        """True when no check-in has a score yet."""
        return not self.panels


def as_date(value: Any) -> dt.date | None:
    """A date from a date, a datetime or ISO text; ``None`` for anything else."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


def _score(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def score_chart(history: Iterable[Mapping[str, Any]],
                infusions: Iterable[Mapping[str, Any]] = ()) -> ScoreChart:
    """Lay out the chart of a patient's check-in scores with their infusions marked.

    Args:
        history: One mapping per check-in, oldest first, with ``date`` and the score keys of
            :data:`SERIES` (``None`` where a score was not computed).
        infusions: One mapping per infusion with ``date`` and ``kind`` (induction or booster).

    Returns:
        The geometry; ``empty`` when there is no score to draw.
    """
    rows = [(as_date(row.get("date")), row) for row in history]
    scored = [(day, row) for day, row in rows if day is not None]
    marks = [(as_date(row.get("date")), str(row.get("kind") or "infusion")) for row in infusions]
    marks_known = [(day, kind) for day, kind in marks if day is not None]

    series = []
    for key, label, maximum in SERIES:
        values = [(day, _score(row.get(key))) for day, row in scored]
        present = [(day, value) for day, value in values if value is not None]
        if present:
            series.append((key, label, maximum, present))
    if not series:
        return ScoreChart(WIDTH, 0, LEFT, WIDTH - RIGHT, (), (), (), 0.0)

    days = [day for _, _, _, present in series for day, _ in present]
    days += [day for day, _ in marks_known]
    first = min(days) - dt.timedelta(days=PAD_DAYS)
    last = max(days) + dt.timedelta(days=PAD_DAYS)
    span = max((last - first).days, 1)
    plot_width = WIDTH - LEFT - RIGHT

    def x_of(day: dt.date) -> float:
        return LEFT + plot_width * (day - first).days / span

    panels = []
    for index, (key, label, maximum, present) in enumerate(series):
        top = TOP + index * (PANEL_HEIGHT + PANEL_GAP)
        bottom = top + PANEL_HEIGHT

        def y_of(value: int, top: float = top, maximum: int = maximum) -> float:
            clamped = min(max(value, 0), maximum)
            return top + PANEL_HEIGHT * (1 - clamped / maximum)

        points = tuple(Point(x_of(day), y_of(value), value, day) for day, value in present)
        gridlines = tuple((y_of(value), value) for value in (0, maximum // 2, maximum))
        panels.append(Panel(key, label, maximum, top, bottom, points, gridlines))

    axis_y = panels[-1].bottom + 4
    tick_count = min(6, span + 1)
    with_year = first.year != last.year
    ticks = []
    for step in range(tick_count):
        day = first + dt.timedelta(days=round(span * step / max(tick_count - 1, 1)))
        label = f"{day:%b} {day.day}" + (f" {day:%Y}" if with_year else "")
        # The first and last labels stay inside the chart.
        anchor = "start" if step == 0 else "end" if step == tick_count - 1 else "middle"
        ticks.append(Tick(x_of(day), label, anchor))
    markers = []
    last_label: dict[str, float] = {}
    for day, kind in sorted(marks_known):
        x = x_of(day)
        labelled = kind not in last_label or x - last_label[kind] >= LABEL_SPACING
        if labelled:
            last_label[kind] = x
        markers.append(Marker(x, day, kind, labelled))
    height = int(axis_y + AXIS_HEIGHT)
    return ScoreChart(WIDTH, height, LEFT, WIDTH - RIGHT, tuple(panels), tuple(markers),
                      tuple(ticks), axis_y)
