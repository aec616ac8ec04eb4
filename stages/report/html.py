"""The report page: one self-contained HTML file (inline CSS, no scripts,
images by relative path in the same folder). Every text from the database
goes through `escape`."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import datetime
from html import escape
from statistics import median

from repcoach.common.history import beats
from repcoach.stages.coaching.heart import ZONES, time_in_zones
from repcoach.stages.report.model import GAP_S, Group, ReportData, human
from repcoach.stages.report.plots import rep_label

GENERATOR = "repcoach session report"  # also marks a folder as ours to replace

CSS = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1150px;
       padding: 0 1em; color: #212121; }
h1 { margin-bottom: .2em; } h2 { margin-top: 2em; border-bottom: 2px solid #2e7d32; }
dl.facts { display: grid; grid-template-columns: max-content auto; gap: .2em 1.2em; }
dl.facts dt { color: #616161; }
ul.totals { display: flex; flex-wrap: wrap; gap: .6em; padding: 0; list-style: none; }
ul.totals li { background: #f1f8e9; border-radius: 6px; padding: .4em .8em; }
ul.totals b { font-size: 1.25em; }
img { max-width: 100%; height: auto; border: 1px solid #e0e0e0; }
.pair { display: flex; flex-wrap: wrap; gap: 1em; } .pair img { max-width: 49%; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { padding: .3em .7em; border-bottom: 1px solid #e0e0e0; text-align: right; }
th { background: #fafafa; } td.text, th.text { text-align: left; }
tr.partial td { color: #757575; font-style: italic; }
.fault { color: #c62828; } .empty { color: #757575; font-style: italic; }
footer { margin-top: 3em; color: #9e9e9e; font-size: .85em; }
"""


def render(data: ReportData, images: Mapping[str, str | None]) -> str:
    """The page; `images` maps a plot id (`angles-<group key>`,
    `progress-<exercise>`, ...) to its file name, None where not drawn."""
    session = data.session
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta name="generator" content="{GENERATOR}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Session {escape(session['id'])} - repcoach report</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>Session {escape(session['id'])}</h1>",
        _facts(session),
    ]
    if not any(g.reps or g.holds for g in data.groups):
        parts.append('<p class="empty">No reps were recorded in this session.</p>')
    if len(data.groups) > 1:
        links = (f'<a href="#{escape(g.key)}">{escape(_heading(g))}</a>' for g in data.groups)
        parts.append(f"<p>In this report: {' | '.join(links)}</p>")
    parts += [_group(g, images) for g in data.groups]
    parts += _progress(data, images)
    stamp = datetime.now().strftime("%Y-%m-%d %H:%M")
    parts.append(f"<footer>Generated {stamp} by repcoach (<code>pipeline report</code>).</footer>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _facts(session: Mapping) -> str:
    member = session["member"]
    facts = {
        "Date": _date(session["started"]),
        "Source": session["source"] or "unknown",
        "Member": f"{member} ({session['level']})" if member else f"none ({session['level']})",
        "Station": session["station"],
        "Duration": duration(session["duration_s"]),
        "Frames": str(session["frames"]),
        "Status": session["status"],
    }
    rows = "".join(f"<dt>{k}</dt><dd>{escape(str(v))}</dd>" for k, v in facts.items())
    return f'<dl class="facts">{rows}</dl>'


def _heading(g: Group) -> str:
    who = f"Person {g.person}" + (f" ({g.member})" if g.member else "")
    return f"{who}: {g.words.title}"


def _group(g: Group, images: Mapping[str, str | None]) -> str:
    parts = [f'<section id="{escape(g.key)}">', f"<h2>{escape(_heading(g))}</h2>"]
    parts.append(_totals(g))
    parts.append(_image(images.get(f"angles-{g.key}"), f"{g.words.title}: angles over time"))
    parts.append(_late_trace_note(g))
    parts.append(_zones(g))
    pair = [
        _image(images.get(f"scores-{g.key}"), "Form score per rep"),
        _image(images.get(f"tempo-{g.key}"), "Tempo per rep"),
    ]
    if any(pair):
        parts.append(f'<div class="pair">{"".join(pair)}</div>')
    if g.reps:
        parts.append(_rep_table(g))
    elif not g.holds:
        parts.append('<p class="empty">No reps of this exercise were counted.</p>')
    if g.holds:
        parts.append(_hold_table(g))
    parts.append(_cues(g))
    parts.append("</section>")
    return "\n".join(p for p in parts if p)


def _late_trace_note(g: Group) -> str:
    """Auto mode records angles once it knows the exercise; the reps it
    replays from before that have no trace under them."""
    starts = [r["start_pts"] for r in g.reps + g.holds if r["start_pts"] is not None]
    first = next((t for t in g.times if t == t), None)  # t == t: not NaN
    if first is None or not starts or first <= min(starts) + 0.5:
        return ""
    return (
        f'<p class="empty">The angle trace starts at {clock(first)}, when the exercise '
        "was recognised; the reps before it were counted from the frames kept meanwhile.</p>"
    )


def _zones(g: Group) -> str:
    """Time in each heart-rate zone, from the trace under the angles; a
    line saying what is missing where the member's maximum is not known."""
    if not any(b == b for b in g.heart):  # b == b: not NaN
        return ""
    if not g.max_hr:
        need = "Time in heart-rate zones needs "
        if g.member is None:
            need += "a member's maximum heart rate; this person trained as a guest"
        else:
            who = escape(g.member)
            need += (
                f"{who}'s maximum heart rate: <code>pipeline members set {who} --max-hr BPM</code>"
            )
        return f'<p class="empty">{need}.</p>'
    seconds = time_in_zones(g.times, g.heart, g.max_hr, GAP_S)
    total = sum(seconds) or 1.0
    body = "".join(
        f'<tr><td class="text">{label}</td><td>{share}</td><td>{bpm}</td>'
        f"<td>{duration(spent)}</td><td>{100 * spent / total:.0f}%</td></tr>"
        for (label, share, bpm), spent in zip(_zone_rows(g.max_hr), seconds, strict=True)
    )
    head = (
        '<tr><th class="text">Heart-rate zone</th><th>of maximum</th><th>bpm</th>'
        "<th>time</th><th>share</th></tr>"
    )
    caption = f"Time in heart-rate zones (maximum {g.max_hr} bpm)"
    return f"<table><caption>{caption}</caption>{head}{body}</table>"


def _zone_rows(max_hr: int) -> list[tuple[str, str, str]]:
    """(name, share of the maximum, beats per minute) below zone 1 and for
    each zone; a zone's first beat is the first whole one at its start."""
    firsts = [math.ceil(start * max_hr) for start, _ in ZONES]
    rows = [("Below zone 1", f"under {ZONES[0][0]:.0%}", f"under {firsts[0]}")]
    for number, (start, name) in enumerate(ZONES, 1):
        if number < len(ZONES):
            share = f"{start:.0%}-{ZONES[number][0]:.0%}"
            bpm = f"{firsts[number - 1]}-{firsts[number] - 1}"
        else:
            share, bpm = f"{start:.0%}+", f"{firsts[number - 1]}+"
        rows.append((f"Zone {number} ({name})", share, bpm))
    return rows


def _totals(g: Group) -> str:
    s = g.summary
    items = [(str(len(g.full_reps)), "reps"), (str(len(g.partial_reps)), "partial reps")]
    if g.holds:
        items.append((duration(s["hold_s"]), f"held in {len(g.holds)} hold(s)"))
    if s.get("mean_score") is not None:
        items.append((f"{s['mean_score']:.0f}", "mean form score"))
    tempos = [(r["tempo_down_s"] or 0) + (r["tempo_up_s"] or 0) for r in g.full_reps]
    if tempos:
        items.append((f"{median(tempos):.1f} s", "median rep time"))
    if s.get("hr_mean") and s.get("hr_peak"):
        items.append((f"{s['hr_mean']} / {s['hr_peak']}", "heart rate over the set, mean / peak"))
    faults = list(s.get("faults", {}).items())[:3]
    common = ", ".join(f"{human(f)} ×{n}" for f, n in faults) if faults else "none"
    items.append((common, "most common faults"))
    lis = "".join(f"<li><b>{escape(v)}</b> {escape(k)}</li>" for v, k in items)
    return f'<ul class="totals">{lis}</ul>'


def _image(name: str | None, alt: str) -> str:
    if not name:
        return ""
    return f'<img src="{escape(name)}" alt="{escape(alt)}" loading="lazy">'


def _heart(rep: dict) -> str:
    """A rep's heart rate: mean / peak, or blank."""
    mean, peak = beats(rep, "hr_mean"), beats(rep, "hr_peak")
    return f"{mean} / {peak}" if mean is not None and peak is not None else ""


def _rep_table(g: Group) -> str:
    away, back = human(g.words.away), human(g.words.back)
    heart = any(_heart(r) for r in g.reps)
    head = _row(
        "th",
        ["Rep", "Partial?", "Start – end", f"{away} (s)", f"{back} (s)", "Range of motion"]
        + ["Score"]
        + (["Heart rate (mean / peak)"] if heart else [])
        + ["Faults"],
        text_last=True,
    )
    rows = []
    for rep in g.reps:
        partial = rep["kind"] == "partial_rep"
        cells = [
            rep_label(rep),
            "yes" if partial else "",
            f"{clock(rep['start_pts'])} – {clock(rep['end_pts'])}",
            _number(rep["tempo_down_s"], 2),
            _number(rep["tempo_up_s"], 2),
            _rom(rep["rom"], rep["rom_unit"]),
            _number(rep["score"], 0),
        ] + ([_heart(rep)] if heart else [])
        faults = _fault_list(rep["faults"], g.words.cues)
        css = "rep partial" if partial else "rep"
        rows.append(f'<tr class="{css}">{_cells(cells)}<td class="text">{faults}</td></tr>')
    return f'<table class="reps"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'


def _hold_table(g: Group) -> str:
    head = _row("th", ["Hold", "Start – end", "Seconds", "Score", "Faults"], text_last=True)
    rows = []
    for hold in g.holds:
        cells = [
            str(hold["number"]),
            f"{clock(hold['start_pts'])} – {clock(hold['end_pts'])}",
            _number(hold["seconds"], 1),
            _number(hold["score"], 0),
        ]
        faults = _fault_list(hold["faults"], g.words.cues)
        rows.append(f'<tr class="hold">{_cells(cells)}<td class="text">{faults}</td></tr>')
    return f'<table class="holds"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'


def _cues(g: Group) -> str:
    """What each fault seen means, in the coach's words."""
    seen = list(dict.fromkeys(f for r in g.reps + g.holds for f in r["faults"]))
    if not seen:
        return ""
    items = "".join(
        f'<dt class="fault">{escape(human(f))}</dt><dd>{escape(g.words.cues.get(f, ""))}</dd>'
        for f in seen
    )
    return f'<h3>Faults seen, and the cue for each</h3><dl class="cues">{items}</dl>'


def _progress(data: ReportData, images: Mapping[str, str | None]) -> list[str]:
    if not data.progress:
        return []
    member = data.session["member"]
    parts = [f'<section id="progress"><h2>Progress of {escape(member)}</h2>']
    for exercise, rows in data.progress.items():
        title = data.words[exercise].title
        parts.append(f"<h3>{escape(title)}</h3>")
        parts.append(_image(images.get(f"progress-{exercise}"), f"{title}: progress"))
        group = data.member_group(exercise)
        unit = group.rom_unit if group is not None else "deg"
        head = _row(
            "th",
            ["Session", "Date", "Reps", "Partial", "Mean score", "Median ROM", "Median rep time"],
        )
        body = [
            _row(
                "td",
                [
                    r["session"] + (" (this one)" if r["session"] == data.session["id"] else ""),
                    _date(r["started"]),
                    str(r["reps"]),
                    str(r["partial_reps"]),
                    _number(r["mean_score"], 0),
                    _rom(r["median_rom"], unit),
                    _number(r["median_tempo_s"], 1) + " s",
                ],
            )
            for r in rows
        ]
        parts.append(f'<table class="progress"><thead>{head}</thead>{"".join(body)}</table>')
    parts.append("</section>")
    return parts


# --- cells and numbers


def _cells(values: Iterable[str]) -> str:
    return "".join(f"<td>{escape(v)}</td>" for v in values)


def _row(tag: str, values: Iterable[str], text_last: bool = False) -> str:
    """A row of cells; `text_last`: the last column is left-aligned text."""
    values = list(values)
    cells = [f"<{tag}>{escape(v)}</{tag}>" for v in values]
    if text_last and cells:
        cells[-1] = f'<{tag} class="text">{escape(values[-1])}</{tag}>'
    return "<tr>" + "".join(cells) + "</tr>"


def _fault_list(faults: Iterable[str], cues: Mapping[str, str]) -> str:
    return ", ".join(
        f'<span class="fault" title="{escape(cues.get(f, ""))}">{escape(human(f))}</span>'
        for f in faults
    )


def _number(value: float | None, digits: int) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _rom(value: float | None, unit: str | None) -> str:
    if value is None:
        return "–"
    return f"{value:.0f}°" if unit == "deg" else f"{value:.2f} ({unit or 'ratio'})"


def clock(seconds: float | None) -> str:
    """Media time as m:ss.s."""
    if seconds is None:
        return "?"
    minutes, rest = divmod(max(seconds, 0.0), 60)
    return f"{int(minutes)}:{rest:04.1f}"


def duration(seconds: float | None) -> str:
    if not seconds:
        return "0 s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s" if minutes else f"{seconds:.1f} s"


def _date(epoch: float | None) -> str:
    return datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M") if epoch else "?"
