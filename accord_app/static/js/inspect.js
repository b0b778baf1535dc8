// The inspector page: one Server-Sent Events stream (/inspect/api/stream) brings a `view` of
// every actor twice a second and `happenings` (woke, hibernated, host down, ...) as they come.
// A thousand actors stay usable: only the MAX_TILES most interesting are drawn (busy, awake,
// with members first), the rest are counted, and the filter finds any one of them.

const MAX_TILES = 96;
const MAX_TIMELINE = 200;

const $ = (id) => document.getElementById(id);
const tileElements = new Map(); // actor id -> its <li>, reused from one view to the next
let lastView = null;
// What a test or a curious attendee can read: how long drawing a view takes.
const stats = { views: 0, lastRenderMs: 0, maxRenderMs: 0, happenings: 0 };
window.inspectorStats = stats;

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

// Busy first, then awake, then by members, then by name: what a person looks for.
function interest(a, b) {
  return (
    b.mailbox - a.mailbox ||
    Number(b.awake) - Number(a.awake) ||
    b.members - a.members ||
    a.name.localeCompare(b.name)
  );
}

function number(value, digits = 0) {
  return value === undefined || value === null ? "—" : value.toFixed(digits);
}

function newTile(actor) {
  const li = element("li", "tile");
  li.dataset.actor = actor.id;
  li.append(element("div", "tile-name"), element("div", "tile-id", actor.id.slice(0, 16) + "…"));
  const dl = element("dl");
  for (const [label, field] of [
    ["worker", "worker"],
    ["state", "state"],
    ["members", "members"],
    ["mailbox", "mailbox"],
    ["turns/s", "turns"],
    ["commit", "commit"],
  ]) {
    dl.append(element("dt", "", label), element("dd", field));
  }
  li.append(dl);
  return li;
}

function fillTile(li, actor) {
  li.dataset.state = actor.awake ? "awake" : "hibernated";
  li.dataset.busy = String(actor.mailbox > 0);
  li.dataset.mailbox = String(actor.mailbox);
  li.querySelector(".tile-name").textContent = actor.name;
  li.title = actor.name;
  const set = (field, text) => {
    li.querySelector(`dd.${field}`).textContent = text;
  };
  set("worker", actor.worker === null ? "this process" : `worker ${actor.worker}`);
  set("state", actor.awake ? "awake" : "hibernated");
  set("members", String(actor.members));
  set("mailbox", String(actor.mailbox));
  set("turns", number(actor.turns_per_second, 1));
  set("commit", actor.commit_ms === undefined || actor.commit_ms === null
    ? "—" : `${actor.commit_ms.toFixed(1)} ms`);
}

function renderActors(view) {
  const wanted = $("filter").value.trim().toLowerCase();
  const matching = wanted
    ? view.actors.filter((a) => a.name.toLowerCase().includes(wanted) || a.id.startsWith(wanted))
    : view.actors;
  const shown = [...matching].sort(interest).slice(0, MAX_TILES);
  const keep = new Set(shown.map((a) => a.id));
  for (const id of tileElements.keys()) if (!keep.has(id)) tileElements.delete(id);
  const items = shown.map((actor) => {
    let li = tileElements.get(actor.id);
    if (!li) tileElements.set(actor.id, (li = newTile(actor)));
    fillTile(li, actor);
    return li;
  });
  $("tiles").replaceChildren(...items);
  const awake = view.actors.filter((a) => a.awake).length;
  const members = view.actors.reduce((sum, a) => sum + a.members, 0);
  $("totals").textContent =
    `${view.actors.length} actors: ${awake} awake, ${view.actors.length - awake} hibernated;` +
    ` ${members} members online`;
  const hidden = matching.length - shown.length;
  $("hidden").textContent = hidden > 0
    ? `and ${hidden} more, quieter ones not drawn: type in the filter to find one`
    : "";
}

function renderWorkers(view) {
  $("scope").textContent = view.scope === "cluster"
    ? `a cluster of ${view.workers.length} workers (this page is served by worker ${view.me});` +
      ` ${view.sharding} sharding`
    : `this process; ${view.sharding} sharding`;
  $("rule").textContent = view.scope === "cluster"
    ? "Each channel's key goes to the worker whose address scores highest for it" +
      " (rendezvous hashing, the router's own rule)."
    : "One process hosts every actor.";
  $("workers").replaceChildren(
    ...view.workers.map((w) => {
      const li = element("li", "worker");
      li.dataset.worker = String(w.number ?? 0);
      li.dataset.state = w.up ? "up" : "down";
      const who = w.number === null ? w.address : `worker ${w.number} · ${w.address}`;
      li.textContent = w.up
        ? `${who}: ${w.actors} actors, ${w.awake} awake, ${w.members} members,` +
          ` mailboxes ${w.mailbox}`
        : `${who}: ${w.why_down}`;
      return li;
    }),
  );
}

function render(view) {
  const started = performance.now();
  lastView = view;
  renderWorkers(view);
  renderActors(view);
  const took = performance.now() - started;
  stats.views += 1;
  stats.lastRenderMs = took;
  stats.maxRenderMs = Math.max(stats.maxRenderMs, took);
}

function addHappenings(happenings) {
  const list = $("timeline");
  for (const h of happenings) {
    const li = element("li");
    li.dataset.kind = h.kind;
    if (h.actor) li.dataset.actor = h.actor;
    if (h.worker !== null) li.dataset.worker = String(h.worker);
    const when = new Date(h.at * 1000).toLocaleTimeString([], { hour12: false });
    const where = h.worker === null ? "" : `worker ${h.worker} `;
    li.append(element("time", "", when), element("span", "kind", h.kind),
      element("span", "", `${where}${h.name ?? ""} ${h.detail}`.trim()));
    list.prepend(li);
    stats.happenings += 1;
  }
  while (list.children.length > MAX_TIMELINE) list.lastElementChild.remove();
}

function connect() {
  const events = new EventSource("/inspect/api/stream");
  const state = $("stream");
  events.onopen = () => {
    state.dataset.state = "open";
    state.textContent = "live";
  };
  events.onerror = () => {
    // EventSource tries again by itself (the server asks for 1 s between tries).
    state.dataset.state = events.readyState === EventSource.CLOSED ? "closed" : "connecting";
    state.textContent = "reconnecting";
  };
  events.addEventListener("view", (event) => render(JSON.parse(event.data)));
  events.addEventListener("happenings", (event) => addHappenings(JSON.parse(event.data)));
}

async function askWhere(event) {
  event.preventDefault();
  const channel = $("where-channel").value.trim();
  const answer = $("where-answer");
  const response = await fetch(`/inspect/api/where?channel_id=${encodeURIComponent(channel)}`);
  const body = await response.json();
  answer.textContent = response.ok
    ? `${body.channel}: key ${body.key} → ` +
      (body.worker === null ? "this process" : `worker ${body.worker} (${body.address})`)
    : body.message;
}

$("filter").addEventListener("input", () => lastView && renderActors(lastView));
$("where").addEventListener("submit", askWhere);
connect();
