// The floor page: a tile per station (live picture, who is there, their
// reps and the last cue), from /floor.json once a second. A tile links to
// the station's own page. Every value from the server goes in as text.
"use strict";

const tiles = new Map(); // station name -> tile element
const POLL_MS = 1000;

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function words(name) {
  return name ? name.replace(/_/g, " ") : "";
}

const NOT_TRAINING = { idle: "not training", recognising: "recognising…", reflection: "reflection" };

function newTile(name) {
  const tile = element("article", "tile");
  tile.dataset.station = name;
  const head = element("header");
  const title = element("h2");
  const link = element("a", "", name);
  link.href = `/?station=${encodeURIComponent(name)}`;
  title.append(link);
  head.append(title, element("span", "state"));
  const picture = element("img");
  picture.alt = `Live view of ${name}`;
  picture.src = `/stream.mjpg?station=${encodeURIComponent(name)}`;
  tile.append(head, picture, element("ul", "people"), element("p", "cue"));
  document.getElementById("tiles").append(tile);
  return tile;
}

function showStation(entry) {
  let tile = tiles.get(entry.station);
  if (!tile) {
    tile = newTile(entry.station);
    tiles.set(entry.station, tile);
  }
  const session = entry.session;
  tile.classList.toggle("ended", session.ended);
  tile.querySelector(".state").textContent = session.ended
    ? "ended"
    : `${entry.people.length} in view · ${session.frames} frames`;
  const list = tile.querySelector(".people");
  list.replaceChildren();
  let cue = "";
  for (const person of entry.people) {
    const row = element("li", "person");
    row.style.setProperty("--colour", person.colour);
    const training = Boolean(person.exercise);
    const what = training ? words(person.exercise) : NOT_TRAINING[person.phase] || "present";
    row.append(
      element("span", "reps", training ? String(person.reps) : "–"),
      element("span", "what", person.member ? `${person.member}: ${what}` : what),
    );
    list.append(row);
    cue = person.last_cue || cue;
  }
  tile.querySelector(".cue").textContent = cue;
}

async function poll() {
  try {
    const response = await fetch("/floor.json", { cache: "no-store" });
    const floor = await response.json();
    const present = new Set();
    for (const entry of floor.stations) {
      showStation(entry);
      present.add(entry.station);
    }
    for (const [name, tile] of tiles) {
      if (!present.has(name)) {
        tile.remove();
        tiles.delete(name);
      }
    }
    document.getElementById("floor-status").textContent = `${floor.stations.length} station(s)`;
  } catch (error) {
    document.getElementById("floor-status").textContent = "reconnecting…";
  }
  setTimeout(poll, POLL_MS);
}

poll();
