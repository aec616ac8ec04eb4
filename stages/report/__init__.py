"""The session report: an HTML page with PNG plots, from the history database.

    from repcoach.stages.report import write_report
    index = write_report(history, "last", Path("report-last"))

`model` reads what to show (per person and exercise: reps, holds, angle
trace, totals; the member's progress), `plots` draws the PNGs (matplotlib,
loaded only when a report is written), `html` renders the page, `writer`
puts the folder in place atomically.
"""

from repcoach.stages.report.writer import write_report

__all__ = ["write_report"]
