// The page's wiring: state, the router, and what each click, key and frame does.
// The pieces it wires: api.js (HTTP), socket.js (the live channel), messages.js (the message
// list), ui.js (drawing), dialogs.js (prompts) and route.js (the address).

import * as api from "./api.js";
import { askName, askUsername, savedUsername } from "./dialogs.js";
import { MessageList } from "./messages.js";
import { channelHref, onRouteChange, readRoute, replaceRoute, serverHref } from "./route.js";
import { ChannelSocket } from "./socket.js";
import * as ui from "./ui.js";

const PAGE_SIZE = 50; // messages per history request
const LOAD_OLDER_PX = 200; // load the previous page when scrolled this close to the top
const TYPING_SHOWN_MS = 5000; // how long "x is typing…" stays after their last notice

const $ = (id) => document.getElementById(id);

const state = {
  username: null,
  servers: [],
  server: null, // the selected server
  channels: [], // the selected server's channels
  channel: null, // the open channel
  socket: null, // its ChannelSocket
  members: [],
  typing: new Map(), // username -> timer that clears their "is typing"
  reachedStart: false, // no older messages to load
  loadingOlder: false,
  // Bumped whenever another channel opens: an answer that arrives for an older one is dropped.
  generation: 0,
};

const messages = new MessageList($("message-list"), $("scroller"));

// -- servers, channels and the router ---------------------------------------------------------

/** Make the page match the address: select its server, open its channel (or sensible defaults). */
async function route() {
  const wanted = readRoute();
  let server = state.servers.find((item) => item.id === wanted.serverId);
  if (!server && wanted.serverId) {
    // Created by someone else since we loaded the list (a shared link, say): ask again.
    await refreshServers();
    server = state.servers.find((item) => item.id === wanted.serverId);
    if (!server) ui.toast("That server does not exist (any more). Showing another one.");
  }
  server ??= state.servers[0];
  if (!server) {
    selectServer(null, []);
    return showEmpty({
      title: "No servers yet",
      text: "A server holds channels, and channels hold the conversation. Start one!",
      action: "Create a server",
      onAction: createServer,
    });
  }
  if (server.id !== state.server?.id) {
    let channels;
    try {
      channels = await api.listChannels(server.id);
    } catch (error) {
      return ui.toast(error.message);
    }
    selectServer(server, channels);
  }
  let channel = state.channels.find((item) => item.id === wanted.channelId);
  if (!channel && wanted.channelId) {
    await refreshChannels();
    channel = state.channels.find((item) => item.id === wanted.channelId);
  }
  channel ??= state.channels[0];
  if (!channel) {
    replaceRoute(serverHref(server.id));
    closeChannel();
    return showEmpty({
      title: `${server.name} has no channels yet`,
      text: "Channels are where people talk. Create the first one.",
      action: "Create a channel",
      onAction: createChannel,
    });
  }
  replaceRoute(channelHref(server.id, channel.id));
  if (channel.id !== state.channel?.id) await openChannel(channel);
}

function selectServer(server, channels) {
  state.server = server;
  state.channels = channels;
  ui.renderServers(state.servers, server?.id);
  ui.renderChannels(server, channels, state.channel?.id);
}

async function refreshServers() {
  try {
    state.servers = await api.listServers();
  } catch (error) {
    ui.toast(error.message);
  }
  ui.renderServers(state.servers, state.server?.id);
}

async function refreshChannels() {
  if (!state.server) return;
  try {
    state.channels = await api.listChannels(state.server.id);
  } catch (error) {
    ui.toast(error.message);
  }
  ui.renderChannels(state.server, state.channels, state.channel?.id);
}

let emptyAction = null;

function showEmpty(empty) {
  emptyAction = empty.onAction;
  ui.renderEmptyState(empty);
}

async function createServer() {
  const server = await askName({
    title: "Create a server",
    text: "A server is a community: it holds channels. You can create more later.",
    label: "Server name",
    placeholder: "Python Lisbon",
    submitLabel: "Create server",
    create: (name) => api.createServer(name),
  });
  if (!server) return;
  state.servers = [...state.servers.filter((item) => item.id !== server.id), server];
  location.hash = serverHref(server.id); // the router takes it from there
}

async function createChannel() {
  if (!state.server) return;
  const serverId = state.server.id;
  const channel = await askName({
    title: "Create a channel",
    text: `In ${state.server.name}. Messages in a channel are kept, and everyone can read them.`,
    label: "Channel name",
    placeholder: "general",
    submitLabel: "Create channel",
    create: (name) => api.createChannel(serverId, name),
  });
  if (!channel) return;
  await refreshChannels();
  location.hash = channelHref(serverId, channel.id);
}

// -- the open channel -------------------------------------------------------------------------

function closeChannel() {
  state.generation += 1;
  state.socket?.stop();
  state.socket = null;
  state.channel = null;
  messages.clear();
  setMembers([]);
  clearTyping();
  ui.renderConnection("idle");
  ui.renderChannelHeader(state.server, null);
  ui.renderChannelStart(null, false);
  ui.renderChannels(state.server, state.channels, null);
}

/** Show a channel: its latest page of history first, then live messages from where it ends. */
async function openChannel(channel) {
  closeChannel();
  const generation = state.generation;
  const server = state.server;
  state.channel = channel;
  state.reachedStart = false;
  ui.renderEmptyState(null);
  ui.renderChannels(server, state.channels, channel.id);
  ui.renderChannelHeader(server, channel);
  ui.setHistoryStatus("Loading messages…");

  let afterSeq = null; // if history fails, still show live messages
  try {
    const page = await api.listMessages(server.id, channel.id, { limit: PAGE_SIZE });
    if (generation !== state.generation) return; // the user moved on meanwhile
    messages.add(page);
    messages.scrollToBottom();
    state.reachedStart = page.length < PAGE_SIZE;
    // Resume right after the newest message we have: nothing sent since the request is lost.
    afterSeq = page.length ? page[0].seq : 0;
  } catch (error) {
    if (generation !== state.generation) return;
    ui.toast(error.message);
  }
  ui.setHistoryStatus("");
  ui.renderChannelStart(channel, state.reachedStart);
  connect(afterSeq);
  await fillScreen();
}

function connect(afterSeq) {
  const socket = new ChannelSocket({
    serverId: state.server.id,
    channelId: state.channel.id,
    username: state.username,
    afterSeq,
    handlers: socketHandlers(),
  });
  state.socket = socket;
  socket.start();
}

/** What each frame from the channel does to the page. */
function socketHandlers() {
  return {
    state: (connection, detail) => {
      ui.renderConnection(connection, detail);
      // After a drop the member list is stale until the next "presence" frame.
      $("member-list").classList.toggle("stale", connection !== "connected");
    },
    presence: (members) => setMembers(members),
    presenceDiff: (joins, leaves) => {
      leaves.forEach(stopTyping);
      const members = new Set(state.members);
      leaves.forEach((name) => members.delete(name));
      joins.forEach((name) => members.add(name));
      setMembers([...members]);
    },
    typing: (name) => {
      if (name === state.username) return; // our other tab
      clearTimeout(state.typing.get(name));
      state.typing.set(name, setTimeout(() => stopTyping(name), TYPING_SHOWN_MS));
      ui.renderTyping([...state.typing.keys()]);
    },
    message: (message) => {
      stopTyping(message.username); // they pressed Enter: they are done typing
      messages.add([message]);
    },
    ack: (message, nonce) => messages.confirm(nonce, message),
    failed: (nonce, error) => {
      const socket = state.socket;
      messages.fail(nonce, error, {
        retry: (row) => {
          messages.unfail(row);
          socket.send(row.querySelector(".message-text").textContent, nonce);
        },
        discard: () => {
          socket.discard(nonce);
          messages.removePending(nonce);
        },
      });
    },
    error: (error) => ui.toast(error.message),
  };
}

function setMembers(members) {
  state.members = [...members].sort((a, b) => a.localeCompare(b));
  ui.renderMembers(state.members, state.username);
}

function stopTyping(name) {
  if (!state.typing.has(name)) return;
  clearTimeout(state.typing.get(name));
  state.typing.delete(name);
  ui.renderTyping([...state.typing.keys()]);
}

function clearTyping() {
  for (const timer of state.typing.values()) clearTimeout(timer);
  state.typing.clear();
  ui.renderTyping([]);
}

/** The previous page of history, when the reader scrolls up to the top. */
async function loadOlder() {
  const before = messages.oldestSeq;
  if (state.loadingOlder || state.reachedStart || before === null || !state.channel) return;
  const generation = state.generation;
  state.loadingOlder = true;
  ui.setHistoryStatus("Loading older messages…");
  try {
    const page = await api.listMessages(state.server.id, state.channel.id, {
      limit: PAGE_SIZE,
      before,
    });
    if (generation !== state.generation) return;
    messages.addOlder(page);
    state.reachedStart = page.length < PAGE_SIZE;
    ui.renderChannelStart(state.channel, state.reachedStart);
  } catch (error) {
    ui.toast(error.message);
  } finally {
    state.loadingOlder = false;
    ui.setHistoryStatus("");
  }
  await fillScreen();
}

/** On a tall screen one page may not fill the pane, so there is nothing to scroll: load more. */
async function fillScreen() {
  const scroller = $("scroller");
  if (scroller.scrollHeight <= scroller.clientHeight && !state.reachedStart) await loadOlder();
}

// -- the composer -----------------------------------------------------------------------------

function send() {
  const input = $("composer-input");
  const text = input.value.trim();
  if (!text || !state.socket) return;
  // Shown at once; sent now, or as soon as the socket is back if it is reconnecting.
  const nonce = state.socket.send(text);
  messages.addPending(nonce, state.username, text);
  input.value = "";
  fitComposer();
}

/** The composer grows with its text, up to a limit set in the CSS (max-height). */
function fitComposer() {
  const input = $("composer-input");
  input.style.height = "auto";
  input.style.height = `${input.scrollHeight}px`;
}

function wireComposer() {
  const input = $("composer-input");
  input.addEventListener("keydown", (event) => {
    // Enter sends, Shift+Enter is a new line; isComposing: Enter that confirms an IME input
    // (Japanese, Chinese...) must not send a half-typed message.
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      send();
    }
  });
  input.addEventListener("input", () => {
    fitComposer();
    if (input.value.trim()) state.socket?.typing();
  });
  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    send();
  });
}

// -- start ------------------------------------------------------------------------------------

async function changeUsername() {
  const name = await askUsername({ current: state.username, cancellable: true });
  if (!name || name === state.username) return;
  state.username = name;
  ui.renderMe(name);
  if (state.channel) await openChannel(state.channel); // join again under the new name
}

async function start() {
  wireComposer();
  $("add-server").addEventListener("click", createServer);
  $("add-channel").addEventListener("click", createChannel);
  $("empty-action").addEventListener("click", () => emptyAction?.());
  $("change-username").addEventListener("click", changeUsername);
  $("scroller").addEventListener(
    "scroll",
    () => {
      if ($("scroller").scrollTop < LOAD_OLDER_PX) loadOlder();
    },
    { passive: true },
  );
  // Nothing pushes new servers or channels to us: look again when the user comes back.
  window.addEventListener("focus", () => refreshServers().then(refreshChannels));

  state.username = savedUsername() ?? (await askUsername());
  ui.renderMe(state.username);
  await refreshServers();
  onRouteChange(route);
  await route();
  $("composer-input").focus();
}

start();
