// The message list of the open channel: one <li> per message, kept in seq order.
//
// Messages arrive from three places that overlap: the history page (HTTP), the live socket, and
// the replay after a reconnect. seq numbers a channel's messages 1, 2, 3... so it is the key:
// a seq already on screen is skipped, and a late one is slotted in where it belongs.
// Messages we sent and the server has not acked yet have no seq: they wait at the bottom,
// dimmed, keyed by their nonce.

import { avatar, formatClock, formatFull, formatWhen, h, hueOf } from "./dom.js";

// Consecutive messages by one person within this time share one header, as in chat apps.
const GROUP_WINDOW_MS = 7 * 60 * 1000;
// Closer than this to the bottom counts as "reading the latest": new messages keep it in view.
const NEAR_BOTTOM_PX = 120;

export class MessageList {
  constructor(list, scroller) {
    this.list = list;
    this.scroller = scroller;
    this.seqs = []; // sorted seqs on screen
    this.rows = new Map(); // seq -> <li>
    this.pending = new Map(); // nonce -> <li>
    this.data = new WeakMap(); // <li> -> its message, for grouping
  }

  clear() {
    this.list.replaceChildren();
    this.seqs = [];
    this.rows.clear();
    this.pending.clear();
  }

  get oldestSeq() {
    return this.seqs.length ? this.seqs[0] : null;
  }

  get newestSeq() {
    return this.seqs.length ? this.seqs[this.seqs.length - 1] : null;
  }

  /** Show messages from the server (in any order); returns how many were new. */
  add(messages) {
    const follow = this.isNearBottom();
    const added = messages.filter((message) => this.insert(message)).length;
    if (follow) this.scrollToBottom();
    return added;
  }

  /** Show an older page above the rest, keeping in place what the reader is looking at. */
  addOlder(messages) {
    const fromBottom = this.scroller.scrollHeight - this.scroller.scrollTop;
    for (const message of messages) this.insert(message);
    this.scroller.scrollTop = this.scroller.scrollHeight - fromBottom;
  }

  /** A message we just sent: shown at once, dimmed until the server acks it. */
  addPending(nonce, username, text) {
    const row = this.render({ username, message: text, timestamp: Date.now() });
    row.classList.add("pending");
    this.pending.set(nonce, row);
    this.list.append(row);
    this.regroup(row);
    this.scrollToBottom(); // you just wrote it: you want to see it
  }

  /** The server stored our message: it now has a seq and takes its place. */
  confirm(nonce, message) {
    this.removePending(nonce);
    this.add([message]);
  }

  /** The server refused our message: say why, and offer to retry or delete it. */
  fail(nonce, error, { retry, discard }) {
    const row = this.pending.get(nonce);
    if (!row) return;
    row.classList.add("failed");
    const actions = h(
      "div",
      { className: "message-error", role: "alert" },
      h("span", {}, error.message),
      h("button", { type: "button", className: "link-button", onclick: () => retry(row) }, "Retry"),
      h("button", { type: "button", className: "link-button", onclick: () => discard() }, "Delete"),
    );
    row.querySelector(".message-body").append(actions);
  }

  /** Back to "sending" after the user clicked Retry. */
  unfail(row) {
    row.classList.remove("failed");
    row.querySelector(".message-error")?.remove();
  }

  removePending(nonce) {
    const row = this.pending.get(nonce);
    if (!row) return;
    this.pending.delete(nonce);
    const next = row.nextElementSibling;
    row.remove();
    if (next) this.regroup(next);
  }

  isNearBottom() {
    const { scrollHeight, scrollTop, clientHeight } = this.scroller;
    return scrollHeight - scrollTop - clientHeight < NEAR_BOTTOM_PX;
  }

  scrollToBottom() {
    this.scroller.scrollTop = this.scroller.scrollHeight;
  }

  // -- internals ----------------------------------------------------------------------------

  insert(message) {
    if (this.rows.has(message.seq)) return false; // dedupe: this seq is already on screen
    const index = sortedIndex(this.seqs, message.seq);
    const row = this.render(message);
    row.dataset.seq = String(message.seq);
    // Before the next larger seq; or, if it is the newest, before the unacked messages.
    const before =
      index < this.seqs.length
        ? this.rows.get(this.seqs[index])
        : (this.pending.values().next().value ?? null);
    this.list.insertBefore(row, before);
    this.seqs.splice(index, 0, message.seq);
    this.rows.set(message.seq, row);
    this.regroup(row);
    if (row.nextElementSibling) this.regroup(row.nextElementSibling);
    return true;
  }

  /** Hide a row's header when it continues the previous row's author within the window. */
  regroup(row) {
    const previous = row.previousElementSibling;
    const mine = this.data.get(row);
    const theirs = previous && this.data.get(previous);
    const continues =
      Boolean(theirs) &&
      theirs.username === mine.username &&
      mine.timestamp - theirs.timestamp < GROUP_WINDOW_MS &&
      !previous.classList.contains("failed");
    row.classList.toggle("continued", continues);
  }

  render(message) {
    const when = new Date(message.timestamp);
    const author = h("span", { className: "author" }, message.username);
    author.style.setProperty("--hue", String(hueOf(message.username)));
    const row = h(
      "li",
      { className: "message" },
      avatar(message.username),
      // Shown on hover beside the rows that have no header of their own.
      h("time", { className: "gutter-time", dateTime: when.toISOString(), "aria-hidden": "true" },
        formatClock(when)),
      h(
        "div",
        { className: "message-body" },
        h(
          "div",
          { className: "message-header" },
          author,
          h("time", { dateTime: when.toISOString(), title: formatFull(when) }, formatWhen(when)),
        ),
        // textContent, never innerHTML: the message is shown exactly as it was typed.
        h("div", { className: "message-text" }, message.message),
      ),
    );
    this.data.set(row, message);
    return row;
  }
}

/** Where `value` goes in the sorted array `values` (binary search). */
function sortedIndex(values, value) {
  let low = 0;
  let high = values.length;
  while (low < high) {
    const middle = (low + high) >> 1;
    if (values[middle] < value) low = middle + 1;
    else high = middle;
  }
  return low;
}
