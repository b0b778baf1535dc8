// The selected server and channel live in the address: #/servers/<id>/channels/<id>.
// A reload, a bookmark or a link pasted in the chat opens the same channel, and Back returns to
// the previous one. The part after "#" never reaches the server, so the backend needs no route.

export const serverHref = (serverId) => `#/servers/${encodeURIComponent(serverId)}`;

export const channelHref = (serverId, channelId) =>
  `${serverHref(serverId)}/channels/${encodeURIComponent(channelId)}`;

/** { serverId, channelId } from the address; either may be null. */
export function readRoute() {
  const parts = location.hash.replace(/^#\/?/, "").split("/");
  const at = (index, name) => {
    if (parts[index] !== name || !parts[index + 1]) return null;
    try {
      return decodeURIComponent(parts[index + 1]);
    } catch {
      return null; // a hand-edited hash with a broken %-escape: treat it as absent
    }
  };
  return { serverId: at(0, "servers"), channelId: at(2, "channels") };
}

/**
 * Correct the address without adding to the history: when the page picks a default channel,
 * Back should not land on the half-empty address the user never chose. It fires no
 * "hashchange", so it never re-enters the router.
 */
export function replaceRoute(href) {
  if (location.hash !== href) history.replaceState(null, "", href);
}

export function onRouteChange(callback) {
  window.addEventListener("hashchange", callback);
}
