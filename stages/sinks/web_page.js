// The dashboard's page logic: follows /events and keeps the people cards and
// the rep table current. Every value from the server goes in as text, never HTML.
"use strict";

const byId = (id) => document.getElementById(id);
// A floor dashboard's station page: `/?station=NAME` asks for that station's data.
const station = new URLSearchParams(location.search).get("station");

function scoped(path, extra) {
  const query = new URLSearchParams(extra || {});
  if (station) query.set("station", station);
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}
const cards = new Map(); // person id -> card element
const shownRows = new Set(); // event ids already in the table (reconnects resend)
let ended = false;

function number(value, digits) {
  return value === null || value === undefined ? "–" : Number(value).toFixed(digits);
}

function words(name) {
  return name ? name.replace(/_/g, " ") : "";
}

function title(name) {
  return words(name).replace(/\b\w/g, (letter) => letter.toUpperCase());
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function newCard(id) {
  const card = element("article", "person");
  card.id = `person-${id}`;
  const head = element("header");
  head.append(element("h3", "who"), element("span", "exercise"));
  const counter = element("div", "counter");
  const reps = element("span", "reps", "0");
  reps.id = `reps-${id}`;
  counter.append(reps, element("span", "unit", "reps"), element("span", "partial"));
  const form = element("div", "form");
  const bar = element("div", "bar");
  bar.append(element("span"));
  form.append(element("span", "label", "Form"), bar, element("span", "form-value", "–"));
  const checkIn = element("button", "check-in", "Check in");
  checkIn.type = "button";
  checkIn.addEventListener("click", () => askCheckIn(id, card));
  card.append(head, counter, form, element("p", "cue"), checkIn);
  byId("people").append(card);
  return card;
}

// The front desk binds a person to a member by name (as showing their code does).
async function askCheckIn(id, card) {
  const member = window.prompt(`Check person ${id} in as which member?`);
  if (!member) return;
  const reply = await fetch(scoped("/checkin"), {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ person: id, member: member.trim() }),
  });
  const answer = await reply.json().catch(() => ({ error: "no answer" }));
  card.querySelector(".cue").textContent = answer.error || `Checked in as ${answer.checked_in}`;
}

// What a card says for someone present but not coached (the coach's phases).
const NOT_TRAINING = {
  idle: "present, not training",
  recognising: "recognising the exercise...",
  reflection: "mirror reflection (not coached)",
};

function showPerson(person) {
  let card = cards.get(person.id);
  if (!card) {
    card = newCard(person.id);
    cards.set(person.id, card);
  }
  card.style.setProperty("--colour", person.colour);
  const rr = person.rr_ms && person.rr_ms.length ? ` \u00b7 RR ${person.rr_ms[person.rr_ms.length - 1]} ms` : "";
  const heart = person.heart_rate ? ` \u2665 ${person.heart_rate}${rr}` : "";
  card.querySelector(".who").textContent = (person.member || `Person ${person.id}`) + heart;
  card.querySelector(".exercise").textContent = title(person.exercise) || NOT_TRAINING[person.phase] || "exercise not recognised yet";
  card.querySelector(".reps").textContent = String(person.reps);
  card.querySelector(".partial").textContent = person.partial ? `+${person.partial} partial` : "";
  const score = person.form_score;
  card.querySelector(".form-value").textContent = number(score, 0);
  const fill = card.querySelector(".bar > span");
  fill.style.width = score === null ? "0" : `${Math.max(0, Math.min(100, score))}%`;
  fill.style.background = score === null || score >= 80 ? "var(--good)" : score >= 60 ? "var(--warn)" : "var(--bad)";
  card.querySelector(".cue").textContent = person.last_cue || "";
}

function showState(state) {
  const s = state.session;
  const where = state.stations && state.stations.length > 1 ? `${state.station}: ` : "";
  const parts = [where + (s.source || "waiting for the pipeline"), `${s.frames} frames`, `${number(s.duration_s, 1)} s`];
  if (s.dropped) parts.push(`${s.dropped} dropped`);
  byId("session").textContent = parts.join(" · ");
  const present = new Set();
  for (const person of state.people) {
    showPerson(person);
    present.add(person.id);
  }
  for (const [id, card] of cards) {
    if (!present.has(id)) {
      card.remove();
      cards.delete(id);
    }
  }
  byId("nobody").hidden = cards.size > 0;
  const late = byId("late-note");
  if (s.joined_late) {
    late.hidden = false;
    late.textContent = `This dashboard started mid-session: the ${s.reps_before_join} rep(s) ` +
      "counted before then are in the counters but not in this table.";
  }
  if (s.ended) finish();
}

function addRows(rows) {
  const body = byId("rep-rows");
  for (const row of rows) {
    if (shownRows.has(row.event_id)) continue;
    shownRows.add(row.event_id);
    const tr = element("tr", row.partial ? "partial" : "");
    const who = element("td", "", `#${row.person}`);
    who.style.color = row.colour;
    const rep = row.partial ? `${row.rep ?? "–"} (partial)` : `${row.rep ?? "–"}`;
    const tempo = row.tempo_down_s === null || row.tempo_down_s === undefined
      ? "–" : `${number(row.tempo_down_s, 1)} s / ${number(row.tempo_up_s, 1)} s`;
    tr.append(
      who,
      element("td", "", title(row.exercise) || "–"),
      element("td", "num", rep),
      element("td", "num", number(row.score, 0)),
      element("td", "faults", row.faults.map(words).join(", ")),
      element("td", "num", tempo),
    );
    body.prepend(tr); // newest first
  }
  byId("no-reps").hidden = shownRows.size > 0;
}

function setStatus(text, kind) {
  const status = byId("status");
  status.textContent = text;
  status.className = `status ${kind}`;
}

let events = null;

function finish() {
  if (ended) return;
  ended = true;
  setStatus("session ended", "ended");
  if (events) events.close();
}

function follow() {
  events = new EventSource(scoped("/events"));
  events.addEventListener("open", () => { if (!ended) setStatus("live", "live"); });
  events.addEventListener("state", (e) => showState(JSON.parse(e.data)));
  events.addEventListener("reps", (e) => addRows(JSON.parse(e.data)));
  events.addEventListener("end", finish);
  events.addEventListener("error", () => { if (!ended) setStatus("reconnecting…", "lost"); });
}

// The video: an endless response, so it starts after the page has loaded
// (else the page would count as loading until the first frame). After a
// dropped connection, ask again: the server keeps nothing per viewer.
const video = byId("stream");
video.addEventListener("load", () => { byId("stream-note").hidden = true; });
video.addEventListener("error", () => {
  if (ended) return;
  byId("stream-note").hidden = false;
  byId("stream-note").textContent = "video unavailable, retrying…";
  setTimeout(() => { video.src = scoped("/stream.mjpg", { t: Date.now() }); }, 2000);
});
window.addEventListener("load", () => { video.src = scoped("/stream.mjpg"); });

follow();
