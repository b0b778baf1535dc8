// The HTTP API, and nothing else: one function per endpoint, all going through request().
//
// Every error the API sends has the same body, {"message": "<a sentence>", "code": "<code>"}.
// request() turns it into an ApiError, so the rest of the page can show error.message to the
// user as it is (it is written for people) and branch on error.code when it needs to.

export class ApiError extends Error {
  constructor(message, code, status) {
    super(message);
    this.name = "ApiError";
    this.code = code;
    this.status = status; // 0 when the server could not be reached at all
  }
}

async function request(path, { method = "GET", body } = {}) {
  const options = { method, headers: { accept: "application/json" } };
  if (body !== undefined) {
    options.headers["content-type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(`/api${path}`, options);
  } catch {
    // fetch() only rejects when no answer came back: server down, network gone.
    throw new ApiError("Cannot reach the server. Is it running?", "network_error", 0);
  }
  // A proxy or a crash may answer with something that is not JSON: keep going without it.
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    const message = data?.message ?? `The server answered ${response.status}.`;
    throw new ApiError(message, data?.code ?? "http_error", response.status);
  }
  return data;
}

// Ids come from the API, but encoding them keeps a malformed hash from changing the path.
const serverPath = (serverId) => `/servers/${encodeURIComponent(serverId)}`;
const channelPath = (serverId, channelId) =>
  `${serverPath(serverId)}/channels/${encodeURIComponent(channelId)}`;

export const listServers = () => request("/servers");

export const createServer = (name) => request("/servers", { method: "POST", body: { name } });

export const listChannels = (serverId) => request(`${serverPath(serverId)}/channels`);

export const createChannel = (serverId, name) =>
  request(`${serverPath(serverId)}/channels`, { method: "POST", body: { name } });

/** The newest `limit` messages, newest first; with `before`, only those with a smaller seq. */
export function listMessages(serverId, channelId, { limit = 50, before } = {}) {
  const query = new URLSearchParams({ limit: String(limit) });
  if (before !== undefined) query.set("before", String(before));
  return request(`${channelPath(serverId, channelId)}/messages?${query}`);
}

/** The WebSocket address of a channel, on the same host as the page (ws: or wss:). */
export function connectUrl(serverId, channelId, username, afterSeq) {
  const url = new URL(`/api${channelPath(serverId, channelId)}/connect`, location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  url.searchParams.set("username", username);
  if (afterSeq !== null && afterSeq !== undefined) {
    url.searchParams.set("after_seq", String(afterSeq));
  }
  return url.href;
}
