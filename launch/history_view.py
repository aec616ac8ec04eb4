"""`pipeline history` as a rich table: one row per session and exercise,
oldest first, with the change since the member's previous session."""

from __future__ import annotations

import time

from rich.table import Table


def _change(now: float | None, before: float | None, digits: int = 0) -> str:
    if now is None or before is None:
        return ""
    delta = now - before
    return f" ({delta:+.{digits}f})" if abs(delta) >= 10**-digits else " (=)"


def progress_table(rows: list[dict], member: str | None) -> Table:
    title = f"Progress of {member}" if member else "Progress, all members"
    table = Table(title=title if rows else f"{title}: no sessions recorded yet")
    for column in ("date", "session", "member", "exercise", "reps", "partial", "score"):
        table.add_column(column)
    for column in ("range", "tempo s", "heart rate", "faults"):
        table.add_column(column)
    previous: dict[tuple, dict] = {}
    for row in rows:
        key = (row["member"], row["exercise"])
        before = previous.get(key, {})
        previous[key] = row
        reps = str(row["reps"]) if not row["holds"] else f"{row['holds']} holds, {row['hold_s']} s"
        score = "" if row["mean_score"] is None else f"{row['mean_score']:.0f}"
        rom = "" if row["median_rom"] is None else f"{row['median_rom']:.0f}"
        faults = ", ".join(f"{name} x{count}" for name, count in list(row["faults"].items())[:3])
        table.add_row(
            time.strftime("%Y-%m-%d %H:%M", time.localtime(row["started"])),
            row["session"],
            row["member"] or "guest",
            row["exercise"],
            reps + _change(row["reps"], before.get("reps")),
            str(row["partial_reps"]),
            score + _change(row["mean_score"], before.get("mean_score")),
            rom + _change(row["median_rom"], before.get("median_rom")),
            "" if row["median_tempo_s"] is None else f"{row['median_tempo_s']:.1f}",
            f"{row['hr_mean']} / {row['hr_peak']}" if row["hr_mean"] else "",  # mean / peak
            faults or "-",
        )
    return table
