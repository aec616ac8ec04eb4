"""`pipeline status` as a rich table."""

from __future__ import annotations

from rich.table import Table


def station_table(status: dict) -> Table:
    """Every station: its source and what the score stage reports for it."""
    score = next((r["report"] for r in status["stages"] if r["stage"] == "score"), None) or {}
    figures = score.get("stations", {})
    table = Table(title="stations")
    columns = ("station", "source", "state", "frames", "fps", "dropped", "age p95 ms", "people")
    for column in (*columns, "reps"):
        table.add_column(column, justify="left" if column in columns[:3] else "right")
    for station in status.get("stations", []):  # an older supervisor lists none
        row = figures.get(station["name"])
        if row is None:
            state = "removed" if station.get("removed") else "starting"
            table.add_row(station["name"], station["source"], state, *["-"] * 6)
            continue
        reps = sum(n for name, n in row["events"].items() if name.startswith("rep:"))
        table.add_row(
            station["name"],
            station["source"],
            row.get("ended") or ("removing" if station.get("removed") else "running"),
            str(row["frames"]),
            f"{row['fps']:.1f}",
            str(row["dropped"]),
            f"{row['age_ms_p95']:.0f}",
            str(row["people"]),
            str(reps),
        )
    return table


def status_table(status: dict) -> Table:
    title = f"{len(status.get('stations', []))} station(s)  ({status['policy']})" + (
        "  stopping" if status["stopping"] else ""
    )
    table = Table(title=title)
    columns = (
        "stage",
        "alive",
        "restarts",
        "in",
        "out",
        "fps",
        "queue",
        "dropped",
        "p50 ms",
        "p95 ms",
        "rss MB",
    )
    for column in columns:
        table.add_column(column, justify="left" if column == "stage" else "right")
    for row in status["stages"]:
        report = row["report"] or {}
        drops = {k: v for k, v in report.get("dropped", {}).items() if v}
        dropped = ", ".join(f"{k} {v}" for k, v in drops.items()) or "0"
        table.add_row(
            row["stage"],
            "yes" if row["alive"] else "no",
            str(row["restarts"]),
            str(report.get("frames_in", "-")),
            str(report.get("frames_out", "-")),
            f"{report.get('fps', 0):.1f}",
            str(report.get("queue_depth", "-")),
            dropped,
            f"{report.get('latency_ms_p50', 0):.1f}",
            f"{report.get('latency_ms_p95', 0):.1f}",
            f"{report.get('rss_mb', 0):.0f}",
        )
    return table
