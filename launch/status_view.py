"""`pipeline status` as a rich table."""

from __future__ import annotations

from rich.table import Table


def status_table(status: dict) -> Table:
    sources = ", ".join(f"{s['name']}: {s['source']}" for s in status["stations"])
    title = f"{sources}  ({status['policy']})" + ("  stopping" if status["stopping"] else "")
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
