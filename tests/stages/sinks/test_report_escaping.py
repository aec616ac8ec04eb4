"""The session report escapes every name it shows: exercise names, member
names, fault ids, in text, in links and in attributes; and a hostile name
never reaches a file path."""

from __future__ import annotations

import time
from html.parser import HTMLParser

from repcoach.common.history import AngleSample, History
from repcoach.stages.report import write_report

EXERCISE = '../../evil"><script>alert("exercise")</script>'
MEMBER = "Mallory \"'><script>alert('member')</script>"
FAULT = 'knees"><script>alert(1)</script>'


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag, attrs) -> None:
        self.tags.append((tag, dict(attrs)))


def record(history: History, session: str, started_offset: float) -> None:
    history.start_session(session, MEMBER, "beginner", f"<img src=x>{session}", "gym<1>")
    for rep in range(1, 4):
        detail = {
            "rep": rep,
            "exercise": EXERCISE,
            "member": MEMBER,
            "start_pts": rep * 2.0,
            "bottom_pts": rep * 2.0 + 0.5,
            "end_pts": rep * 2.0 + 1.0,
            "tempo_down_s": 0.5,
            "tempo_up_s": 0.5,
            "rom": 90.0 + rep,
            "rom_unit": "deg",
            "score": 80.0,
            "faults": [FAULT],
        }
        history.add_rep(session, f"{session}:{rep}:0", "rep", 1, detail)
    samples = [AngleSample(1, t / 10, EXERCISE, {"knee": 90.0 + t}) for t in range(80)]
    history.add_angles(session, samples)
    history.update_session(session, 240, 8.0, "ended")
    history.db.execute(
        "UPDATE sessions SET started = ? WHERE id = ?", (time.time() + started_offset, session)
    )


def test_hostile_names_are_escaped_everywhere(tmp_path):
    history = History.open(tmp_path / "h.sqlite")
    history.member_level(MEMBER, "beginner")
    record(history, "s-earlier", -86400)
    record(history, "s-today", 0)
    out = tmp_path / "reports" / "r"
    index = write_report(history, "s-today", out)
    history.close()
    page = index.read_text()

    parser = Tags()
    parser.feed(page)
    assert "script" not in [tag for tag, _ in parser.tags]
    assert "<script" not in page.lower()
    # no attribute was broken out of: each parsed tag is one the page makes
    made = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "dl", "dt", "dd"}
    made |= {"p", "a", "section", "ul", "li", "b", "img", "div", "table", "thead", "tbody"}
    made |= {"tr", "th", "td", "span", "footer", "code"}
    assert {tag for tag, _ in parser.tags} <= made
    links = [a["href"] for tag, a in parser.tags if tag == "a" and "href" in a]
    images = [a["src"] for tag, a in parser.tags if tag == "img"]
    assert images, "no plots were drawn"
    ids = {a["id"] for _, a in parser.tags if "id" in a}
    for href in links:
        assert href.startswith("#") and href[1:] in ids, href
    for src in images:
        assert "/" not in src and (out / src).is_file(), src
    # the names are shown, escaped, as text
    assert "Mallory &quot;&#x27;&gt;&lt;script&gt;" in page
    assert "&lt;script&gt;alert(&quot;exercise&quot;)" in page
    # every file stays inside the report folder
    assert sorted(p.parent for p in (tmp_path / "reports").rglob("*") if p.is_file()) == [
        out
    ] * len([p for p in out.iterdir()])
