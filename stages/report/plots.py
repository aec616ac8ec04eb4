"""The report's PNG plots, drawn with matplotlib's object API on the Agg
canvas: no pyplot, so no global figure state and no display is needed, and
importing this module stays cheap (matplotlib loads on the first plot)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from repcoach.stages.coaching.heart import ZONES
from repcoach.stages.report.model import Group, human, safe_name

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

DPI = 100
FULL = "#2e7d32"  # a counted rep
FAULTY = "#ef6c00"  # a counted rep with faults
PARTIAL = "#9e9e9e"  # a partial rep (not counted)
HOLD = "#1565c0"
FAULT = "#c62828"
DOWN, UP = "#5c6bc0", "#26a69a"
TODAY = HOLD
ZONE_COLOURS = ("#90caf9", "#a5d6a7", "#fff59d", "#ffcc80", "#ef9a9a")  # heart-rate zones 1-5


def _figure(width_in: float, height_in: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width_in, height_in), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)  # the Agg backend, set for this figure only
    return figure


def _save(figure: Figure, folder: Path, name: str) -> str:
    figure.savefig(folder / name, dpi=DPI)
    return name


def rep_label(rep: dict) -> str:
    return f"P{rep['number']}" if rep["kind"] == "partial_rep" else str(rep["number"])


def faults_text(faults: Sequence[str], sep: str = ", ") -> str:
    return sep.join(human(f) for f in faults)


def angle_trace(group: Group, folder: Path) -> str | None:
    """Every angle over time, the counting measure in bold; reps shaded
    (partial ones grey), a dashed line at each turning point, faults in red.
    Under it, on the same time axis, the heart rate where a strap sent one."""
    if not any(not math.isnan(t) for t in group.times):
        return None
    with_heart = any(not math.isnan(b) for b in group.heart)
    figure = _figure(11, 5.6 if with_heart else 3.8)
    if with_heart:
        ax, heart_ax = figure.subplots(2, 1, sharex=True, height_ratios=(3, 1.4))
        _heart_trace(heart_ax, group)
    else:
        ax = figure.add_subplot()
    stressed = group.measure if group.measure in group.angles else None
    for name in sorted(group.angles, key=lambda n: (n != stressed, n)):
        bold = name == stressed or stressed is None
        ax.plot(
            group.times,
            group.angles[name],
            lw=1.8 if bold else 1.0,
            alpha=1.0 if bold else 0.7,
            label=human(name),
        )
    top = ax.get_xaxis_transform()  # x in seconds, y in axes fractions
    for rep in group.reps:
        partial = rep["kind"] == "partial_rep"
        colour = PARTIAL if partial else FULL
        start, bottom, end = rep["start_pts"], rep["bottom_pts"], rep["end_pts"]
        if start is None or end is None:
            continue
        ax.axvspan(start, end, color=colour, alpha=0.15, lw=0)
        if bottom is not None:
            ax.axvline(bottom, color=colour, ls="--", lw=0.8)
        middle = bottom if bottom is not None else (start + end) / 2
        ax.text(
            middle,
            1.01,
            rep_label(rep),
            transform=top,
            ha="center",
            va="bottom",
            fontsize=8,
            color=colour,
            fontweight="bold",
        )
        faults = [f for f in rep["faults"] if not (partial and f == "partial_range")]
        if faults:
            ax.plot([middle], [0.04], marker="^", color=FAULT, transform=top, clip_on=False)
            ax.text(
                middle,
                0.09,
                faults_text(faults),
                transform=top,
                rotation=90,
                ha="center",
                va="bottom",
                fontsize=7,
                color=FAULT,
            )
    for hold in group.holds:
        if hold["start_pts"] is None or hold["end_pts"] is None:
            continue
        ax.axvspan(hold["start_pts"], hold["end_pts"], color=HOLD, alpha=0.12, lw=0)
        label = f"Hold {hold['number']}"
        if hold["faults"]:
            label += ": " + faults_text(hold["faults"])
        ax.text(hold["start_pts"], 1.01, label, transform=top, fontsize=8, color=HOLD)
    if not with_heart:
        ax.set_xlabel("time in the session (s)")
    ax.set_ylabel("degrees")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8, framealpha=0.8)
    return _save(figure, folder, f"angles-{group.key}.png")


def _heart_trace(ax: Axes, group: Group) -> None:
    """Beats per minute over time, reps shaded as above; with the member's
    maximum heart rate, the zones as bands."""
    for rep in group.reps:
        if rep["start_pts"] is not None and rep["end_pts"] is not None:
            colour = PARTIAL if rep["kind"] == "partial_rep" else FULL
            ax.axvspan(rep["start_pts"], rep["end_pts"], color=colour, alpha=0.15, lw=0)
    ax.plot(group.times, group.heart, color=FAULT, lw=1.5)  # NaN: a gap, never bridged
    beats = [b for b in group.heart if not math.isnan(b)]
    low, high = min(beats) - 10, max(beats) + 10
    if group.max_hr:
        bounds = [start * group.max_hr for start, _ in ZONES] + [group.max_hr * 1.05]
        for number, (start, end) in enumerate(zip(bounds, bounds[1:], strict=False), 1):
            ax.axhspan(start, end, color=ZONE_COLOURS[number - 1], alpha=0.12, lw=0)
            if low < (start + end) / 2 < high:
                ax.text(
                    1.002,
                    (start + end) / 2,
                    f"Z{number}",
                    transform=ax.get_yaxis_transform(),
                    fontsize=7,
                    va="center",
                    color="#616161",
                )
    ax.set_ylim(low, high)
    ax.set_ylabel("heart rate (bpm)")
    ax.set_xlabel("time in the session (s)")
    ax.grid(alpha=0.3)


def _rep_axis(ax: Axes, reps: list[dict]) -> list[int]:
    x = list(range(len(reps)))
    ax.set_xticks(x, [rep_label(r) for r in reps])
    ax.set_xlabel("rep (P = partial, not counted)")
    ax.grid(axis="y", alpha=0.3)
    return x


def scores(group: Group, folder: Path) -> str | None:
    """Form score per rep; faulty reps orange with their faults written above."""
    reps = [r for r in group.reps if r["score"] is not None]
    if not reps:
        return None
    figure = _figure(5.6, 3.4)
    ax = figure.add_subplot()
    x = _rep_axis(ax, reps)
    for i, rep in zip(x, reps, strict=True):
        partial = rep["kind"] == "partial_rep"
        colour = PARTIAL if partial else FAULTY if rep["faults"] else FULL
        ax.bar(i, rep["score"], color=colour, hatch="//" if partial else None, edgecolor="white")
        if rep["faults"]:
            ax.text(
                i,
                rep["score"] + 2,
                faults_text(rep["faults"], "\n"),
                rotation=90,
                ha="center",
                va="bottom",
                fontsize=7,
                color=FAULT,
            )
    ax.set_ylim(0, 160)  # room above 100 for the fault names
    ax.set_yticks(range(0, 101, 20))
    ax.set_ylabel("form score")
    ax.set_title("Form score per rep", fontsize=10)
    return _save(figure, folder, f"scores-{group.key}.png")


def tempo(group: Group, folder: Path) -> str | None:
    """Seconds of each half of each rep, stacked."""
    reps = [r for r in group.reps if r["tempo_down_s"] is not None and r["tempo_up_s"] is not None]
    if not reps:
        return None
    figure = _figure(5.6, 3.4)
    ax = figure.add_subplot()
    x = _rep_axis(ax, reps)
    down = [r["tempo_down_s"] for r in reps]
    up = [r["tempo_up_s"] for r in reps]
    hatch = ["//" if r["kind"] == "partial_rep" else None for r in reps]
    words = group.words
    ax.bar(x, down, color=DOWN, hatch=hatch, edgecolor="white", label=human(words.away))
    ax.bar(x, up, bottom=down, color=UP, hatch=hatch, edgecolor="white", label=human(words.back))
    ax.set_ylabel("seconds")
    ax.set_title("Tempo per rep", fontsize=10)
    ax.legend(fontsize=8)
    return _save(figure, folder, f"tempo-{group.key}.png")


def progress(
    exercise: str, title: str, rows: list[dict], current: str, unit: str, folder: Path
) -> str:
    """The member's sessions of one exercise: mean score, reps and median
    range of motion; the report's own session in blue."""
    figure = _figure(11, 3.2)
    axes = figure.subplots(1, 3)
    x = list(range(len(rows)))
    labels = [datetime.fromtimestamp(r["started"]).strftime("%m-%d\n%H:%M") for r in rows]
    today = [r["session"] == current for r in rows]
    for ax, key, name, top in (
        (axes[0], "mean_score", "mean form score", 105),
        (axes[1], "reps", "reps", None),
        (axes[2], "median_rom", f"median range of motion ({unit})", None),
    ):
        values = [math.nan if r[key] is None else r[key] for r in rows]
        if key == "reps":
            ax.bar(x, values, color=[TODAY if t else FULL for t in today])
            ax.yaxis.get_major_locator().set_params(integer=True)
        else:
            ax.plot(x, values, marker="o", color=FULL)
            ax.plot(
                [i for i in x if today[i]],
                [v for i, v in enumerate(values) if today[i]],
                marker="o",
                ms=9,
                ls="none",
                color=TODAY,
            )
        finite = [v for v in values if not math.isnan(v)]
        # from zero: a small change must not look like a big one
        ax.set_ylim(0, top or 1.15 * max(finite, default=1.0) or 1.0)
        ax.set_xticks(x, labels, fontsize=7)
        ax.set_title(name, fontsize=9)
        ax.grid(alpha=0.3)
    figure.suptitle(f"{title}: progress over sessions", fontsize=10)
    return _save(figure, folder, f"progress-{safe_name(exercise)}.png")
