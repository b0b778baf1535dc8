// Drawing the page from the state: the server rail, the channel list, the members, the typing
// line, the connection badge and the toasts. Each function replaces its part of the page from
// scratch: these lists are short, and redrawing is simpler to follow than patching.

import { avatar, h, initials } from "./dom.js";
import { channelHref, serverHref } from "./route.js";

const $ = (id) => document.getElementById(id);

export function renderServers(servers, selectedId) {
  $("server-list").replaceChildren(
    ...servers.map((server) => {
      const selected = server.id === selectedId;
      const link = h(
        "a",
        {
          className: "rail-item",
          href: serverHref(server.id),
          title: server.name, // the tooltip, since the icon only shows initials
          "aria-label": server.name,
          "aria-current": selected ? "page" : undefined,
        },
        initials(server.name),
      );
      return h("li", { className: "rail-entry" }, h("span", { className: "rail-pill" }), link);
    }),
  );
}

export function renderChannels(server, channels, selectedId) {
  $("server-name").textContent = server ? server.name : "Accord";
  $("add-channel").disabled = !server;
  $("channel-list").replaceChildren(
    ...channels.map((channel) =>
      h(
        "li",
        {},
        h(
          "a",
          {
            className: "channel",
            href: channelHref(server.id, channel.id),
            "aria-current": channel.id === selectedId ? "page" : undefined,
          },
          h("span", { className: "channel-hash", "aria-hidden": "true" }, "#"),
          h("span", { className: "channel-name" }, channel.name),
        ),
      ),
    ),
  );
}

export function renderChannelHeader(server, channel) {
  $("channel-name").textContent = channel ? channel.name : "No channel";
  document.querySelector(".chat-hash").hidden = !channel;
  const input = $("composer-input");
  input.disabled = !channel;
  input.placeholder = channel ? `Message #${channel.name}` : "Pick a channel first";
  document.title = channel ? `#${channel.name} · ${server.name} · Accord` : "Accord";
}

/** "Welcome to #general!" above the first message, once there is nothing older to load. */
export function renderChannelStart(channel, reached) {
  $("channel-start").hidden = !reached || !channel;
  if (!channel) return;
  $("channel-start-title").textContent = `Welcome to #${channel.name}!`;
  $("channel-start-text").textContent = `This is the start of the #${channel.name} channel.`;
}

export function setHistoryStatus(text) {
  $("history-status").textContent = text;
}

export function renderMe(username) {
  $("me-name").textContent = username;
  $("me-avatar").replaceWith(Object.assign(avatar(username), { id: "me-avatar" }));
}

export function renderMembers(members, me) {
  $("member-count").textContent = String(members.length);
  $("member-list").replaceChildren(
    ...members.map((name) =>
      h(
        "li",
        { className: "member" },
        h("span", { className: "member-avatar" }, avatar(name), h("span", { className: "dot" })),
        h("span", { className: "member-name" }, name),
        name === me ? h("span", { className: "member-you" }, "you") : null,
      ),
    ),
  );
}

export function renderTyping(names) {
  const element = $("typing");
  let text = "";
  if (names.length === 1) text = `${names[0]} is typing…`;
  else if (names.length === 2) text = `${names[0]} and ${names[1]} are typing…`;
  else if (names.length > 2) text = "Several people are typing…";
  element.replaceChildren(
    ...(text ? [typingDots(), text] : []),
  );
}

/** Three bouncing dots; decorative, the sentence says it all. */
function typingDots() {
  return h("span", { className: "typing-dots", "aria-hidden": "true" }, h("i"), h("i"), h("i"));
}

const CONNECTION_LABELS = {
  idle: "",
  connecting: "Connecting…",
  connected: "Connected",
  reconnecting: "Reconnecting…",
  offline: "Offline",
};

/** The badge in the channel header (and the line under your name): is the chat live? */
export function renderConnection(state, detail = "") {
  const badge = $("connection");
  badge.dataset.state = state;
  badge.title = detail;
  badge.replaceChildren(
    ...(state === "idle" ? [] : [h("span", { className: "dot" }), CONNECTION_LABELS[state]]),
  );
  const short = $("connection-short");
  short.dataset.state = state;
  short.textContent = state === "idle" ? "" : detail || CONNECTION_LABELS[state];
  document.body.dataset.connection = state;
}

/** The centre of the page when there is nothing to chat in yet. */
export function renderEmptyState(empty) {
  $("empty-state").hidden = !empty;
  $("scroller").hidden = Boolean(empty);
  $("composer").hidden = Boolean(empty);
  if (!empty) return;
  $("empty-title").textContent = empty.title;
  $("empty-text").textContent = empty.text;
  $("empty-action").textContent = empty.action;
}

/** An error that belongs to no form, shown for a few seconds (longer for longer text). */
export function toast(message) {
  const item = h(
    "div",
    { className: "toast" },
    h("span", {}, message),
    h("button", {
      type: "button",
      className: "toast-close",
      "aria-label": "Dismiss",
      textContent: "×",
      onclick: () => item.remove(),
    }),
  );
  $("toasts").append(item);
  setTimeout(() => item.remove(), 4000 + 60 * message.length);
}
