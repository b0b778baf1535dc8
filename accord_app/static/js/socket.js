// One channel's live connection, which survives drops.
//
// - After a drop it reconnects by itself, waiting a little longer after each failure
//   (exponential backoff with jitter), so a restarting server is not hammered by every tab.
// - It reconnects with after_seq = the last seq up to which it has seen every one: the server
//   replays what was missed, so there are no gaps. Not the newest seq it has seen: a long
//   replay comes in slices, and messages written meanwhile arrive live between them, with
//   higher seqs; resuming after those would skip the rest of the replay. A replay may overlap
//   what arrived before, so whoever shows messages must dedupe them by seq (messages.js does).
// - Every message is sent with a nonce and kept in an outbox until the server acks it. After a
//   reconnect the outbox is sent again; the server stores a message once per nonce, so a retry
//   can never post it twice.
//
// It knows nothing about the page: it reports through the `handlers` callbacks.

import { ApiError, connectUrl, listMessages } from "./api.js";

// Milliseconds to wait before the 1st, 2nd, ... reconnection attempt; then the last one again.
const BACKOFF_MS = [250, 500, 1000, 2000, 4000, 8000];
// The runtime answers the text frame "ping" with "pong" (even while the channel's actor sleeps):
// with no frame at all for two intervals, the connection is dead even if the browser missed it.
const HEARTBEAT_MS = 20_000;
// The server relays at most one typing notice per ~2 s anyway: sending more is wasted traffic.
const TYPING_EVERY_MS = 3_000;
// How long to wait before asking again for the rest of a replay that hit the rate limit.
const RESUME_RETRY_MS = 1_000;
// Error codes that answer a "message" frame (the others are about the connection as a whole).
// The message was not stored, or (outcome_unknown) may or may not be: it is shown as failed,
// with the reason and a Retry button, which sends the same nonce: a stored one is acked.
const MESSAGE_ERRORS = new Set([
  "rate_limited",
  "empty_message",
  "message_too_long",
  "invalid_message",
  "invalid_nonce",
  "invalid_frame",
  "nonce_reused",
  "storage_full",
  "storage_unavailable",
  "not_stored",
  "outcome_unknown",
  "overloaded",
  "internal_error",
]);

/** A random id for a message. crypto.randomUUID() needs https or localhost; this works anywhere. */
function newNonce() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

export class ChannelSocket {
  /**
   * handlers: state(state, detail), presence(members), presenceDiff(joins, leaves),
   * typing(name), message(message), ack(message, nonce), failed(nonce, error), error(error),
   * resumed(frame).
   * state is "connecting", "connected", "reconnecting" or "offline".
   */
  constructor({ serverId, channelId, username, afterSeq = null, handlers = {} }) {
    this.serverId = serverId;
    this.channelId = channelId;
    this.username = username;
    this.lastSeq = afterSeq; // every seq up to this one was seen; null: live messages only
    this.ahead = new Set(); // seqs seen beyond lastSeq + 1, until the ones between arrive
    this.catchingUp = false; // a replay in slices is under way ("resumed" said more)
    this.handlers = handlers;
    this.state = "idle";
    this.ws = null;
    this.attempt = 0; // failed attempts since the last good connection
    this.outbox = new Map(); // nonce -> text, until the server acks it
    this.inFlight = []; // nonces sent on this connection and not answered yet, oldest first
    this.stopped = false;
    this.retryTimer = null;
    this.heartbeat = null;
    this.lastHeard = 0;
    this.lastTypingAt = 0;
    this.onOnline = () => this.reconnectNow();
    this.onOffline = () => this.setState("offline", "Your device is offline.");
  }

  start() {
    window.addEventListener("online", this.onOnline);
    window.addEventListener("offline", this.onOffline);
    this.connect();
  }

  /** Close for good (another channel was opened): no reconnection after this. */
  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    window.removeEventListener("online", this.onOnline);
    window.removeEventListener("offline", this.onOffline);
    if (this.ws) this.detach(this.ws).close(1000, "bye");
    this.ws = null;
  }

  get connected() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  /** Send a message; returns its nonce. While disconnected it waits in the outbox. */
  send(text, nonce = newNonce()) {
    this.outbox.set(nonce, text);
    if (this.connected) this.transmit(nonce);
    return nonce;
  }

  /** Forget a message that failed (the user deleted it): it will not be sent again. */
  discard(nonce) {
    this.outbox.delete(nonce);
  }

  /** Tell the others we are typing, at most once per TYPING_EVERY_MS. */
  typing() {
    const now = Date.now();
    if (!this.connected || now - this.lastTypingAt < TYPING_EVERY_MS) return;
    this.lastTypingAt = now;
    this.ws.send(JSON.stringify({ type: "typing" }));
  }

  // -- the connection -----------------------------------------------------------------------

  connect() {
    if (this.stopped) return;
    if (!navigator.onLine) {
      // Trying now would only fail: the "online" event calls reconnectNow().
      this.setState("offline", "Your device is offline.");
      return;
    }
    this.setState(this.state === "idle" ? "connecting" : "reconnecting");
    const url = connectUrl(this.serverId, this.channelId, this.username, this.lastSeq);
    const ws = new WebSocket(url);
    this.ws = ws;
    let opened = false;
    ws.onopen = () => {
      opened = true;
      this.lastHeard = Date.now();
      this.setState("connected");
      this.startHeartbeat(ws);
      // Everything not acked yet goes again, in order; the nonces make this safe.
      for (const nonce of this.outbox.keys()) this.transmit(nonce);
    };
    ws.onmessage = (event) => {
      this.lastHeard = Date.now();
      this.receive(event.data);
    };
    ws.onclose = () => this.dropped(ws, opened);
    // An "error" event is always followed by "close", which does the work.
  }

  /** The connection is gone: find out whether trying again can help, then do so. */
  async dropped(ws, opened) {
    this.detach(ws);
    if (this.ws === ws) this.ws = null;
    this.inFlight = [];
    if (this.stopped) return;
    let reason = "";
    if (!opened) {
      // A refused handshake reaches JavaScript as a bare close, without the server's reason.
      // The same checks answer over HTTP with a readable error: a 4xx there (say, the channel
      // was deleted) will not fix itself, so stop instead of retrying forever. A 5xx (the
      // cluster's worker for this channel is down) may: say why, and keep trying.
      const refusal = await this.whyRefused();
      if (this.stopped || this.ws) return; // stopped, or reconnectNow() ran while we asked
      if (refusal?.status >= 400 && refusal.status < 500) {
        this.stopped = true;
        this.setState("offline", refusal.message);
        this.handlers.error?.(refusal);
        return;
      }
      if (refusal?.status >= 500) reason = `${refusal.message} `;
    }
    const delay = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)];
    this.attempt += 1;
    // Jitter (75% to 125%) spreads out the tabs that all lost the same server at once.
    const wait = Math.round(delay * (0.75 + Math.random() / 2));
    const seconds = Math.max(1, Math.round(wait / 1000));
    this.setState("reconnecting", `${reason}Trying again in ${seconds} s.`);
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.connect(), wait);
  }

  /** The API's error for this channel, if it has one (an ApiError), else null. */
  async whyRefused() {
    try {
      await listMessages(this.serverId, this.channelId, { limit: 1 });
      return null;
    } catch (error) {
      return error instanceof ApiError ? error : null;
    }
  }

  /** The network came back: skip the rest of the backoff. */
  reconnectNow() {
    if (this.connected) this.setState("connected"); // the socket outlived a short outage
    if (this.stopped || this.ws) return;
    clearTimeout(this.retryTimer);
    this.connect();
  }

  startHeartbeat(ws) {
    clearInterval(this.heartbeat);
    this.heartbeat = setInterval(() => {
      if (Date.now() - this.lastHeard > 2 * HEARTBEAT_MS) {
        // close() on a dead connection can wait a long time for the other side: give up on it
        // now and reconnect.
        this.detach(ws).close(4000, "no answer to ping");
        this.dropped(ws, true);
      } else if (ws.readyState === WebSocket.OPEN) {
        ws.send("ping");
      }
    }, HEARTBEAT_MS);
  }

  /** Stop listening to a socket we are done with; returns it. */
  detach(ws) {
    ws.onopen = ws.onmessage = ws.onclose = null;
    clearInterval(this.heartbeat);
    return ws;
  }

  transmit(nonce) {
    const text = this.outbox.get(nonce);
    this.ws.send(JSON.stringify({ type: "message", message: text, nonce }));
    this.inFlight.push(nonce);
  }

  setState(state, detail = "") {
    this.state = state;
    this.handlers.state?.(state, detail);
  }

  // -- frames from the server -------------------------------------------------------------

  receive(data) {
    if (data === "pong") return; // the heartbeat's answer; lastHeard is already updated
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      return; // not ours to show
    }
    switch (frame.type) {
      case "presence":
        this.attempt = 0; // the server took us in: the next drop starts the backoff afresh
        this.handlers.presence?.(frame.members);
        break;
      case "presence_diff": // who came and went since the last one (the app's server)
        this.handlers.presenceDiff?.(frame.joins, frame.leaves);
        break;
      case "joined": // one name at a time: the actor built in chapter 05 says it this way
        this.handlers.presenceDiff?.([frame.username], []);
        break;
      case "left":
        this.handlers.presenceDiff?.([], [frame.username]);
        break;
      case "typing":
        this.handlers.typing?.(frame.username);
        break;
      case "message":
        this.seen(frame.seq);
        this.handlers.message?.(frame);
        break;
      case "ack":
        this.seen(frame.seq);
        this.answered(frame.nonce);
        this.outbox.delete(frame.nonce);
        this.handlers.ack?.(frame, frame.nonce);
        break;
      case "resumed":
        // A long absence is replayed in slices, so a slow link never overflows the server's
        // send queue for this socket: ask for the next slice until there is no more.
        this.replayed(frame);
        this.catchingUp = frame.more;
        if (frame.more) this.askForMore();
        this.handlers.resumed?.(frame);
        break;
      case "error":
        this.failed(frame);
        break;
    }
  }

  askForMore() {
    // After a reconnection, the new connection's own replay takes over.
    if (this.ws?.readyState !== WebSocket.OPEN) return;
    this.ws.send(JSON.stringify({ type: "resume", after_seq: this.lastSeq }));
  }

  seen(seq) {
    if (this.lastSeq === null) this.lastSeq = seq - 1; // live only: from the first one on
    if (seq <= this.lastSeq) return;
    this.ahead.add(seq);
    this.advance();
    if (this.ahead.size > 0 && !this.catchingUp) {
      // A gap that no replay under way will fill: ask for what is missing.
      this.catchingUp = true;
      this.askForMore();
    }
  }

  /** A replay's slice ends: every seq after its after_seq up to its last_seq came before it. */
  replayed(frame) {
    if (this.lastSeq === null || frame.after_seq > this.lastSeq) return;
    // Any seq of that stretch still missing is not in the channel: nothing to wait for.
    this.lastSeq = Math.max(this.lastSeq, frame.last_seq);
    this.advance();
  }

  advance() {
    for (const seq of this.ahead) if (seq <= this.lastSeq) this.ahead.delete(seq);
    while (this.ahead.delete(this.lastSeq + 1)) this.lastSeq += 1;
  }

  answered(nonce) {
    const index = this.inFlight.indexOf(nonce);
    if (index >= 0) this.inFlight.splice(index, 1);
  }

  failed(frame) {
    if (frame.code === "rate_limited" && !frame.nonce && this.catchingUp) {
      // Replays are paid by the message: a long absence can spend this connection's budget
      // before it is caught up. Ask for the next slice once the budget has grown back.
      setTimeout(() => this.askForMore(), RESUME_RETRY_MS);
      return;
    }
    const error = new ApiError(frame.message, frame.code, 0);
    // An error about a message names its nonce; the channel also answers a connection's frames
    // in order, so without one it belongs to the oldest message still waiting for an answer.
    if (MESSAGE_ERRORS.has(frame.code) && this.inFlight.length > 0) {
      const nonce = this.inFlight.includes(frame.nonce) ? frame.nonce : this.inFlight[0];
      this.answered(nonce);
      this.outbox.delete(nonce); // not stored: sending it again is the user's choice (Retry)
      this.handlers.failed?.(nonce, error);
    } else {
      this.handlers.error?.(error);
    }
  }
}
