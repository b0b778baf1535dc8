// Small DOM helpers. The one rule of this frontend lives here: text from users (names, messages)
// becomes a text node, never markup. h() refuses to set innerHTML, so a message such as
// <img src=x onerror=alert(1)> is shown as those characters and nothing runs.

/**
 * Create an element: h("a", { className: "link", href: "#/x" }, "text", otherElement).
 * Props named like DOM properties are assigned (className, href, title, hidden, type...);
 * "role", "aria-*" and "data-*" props become attributes. Strings become text nodes.
 */
export function h(tag, props = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "innerHTML" || name === "outerHTML") throw new Error("h() sets text, not HTML");
    if (name === "role" || name.startsWith("aria-") || name.startsWith("data-")) {
      element.setAttribute(name, value === true ? "true" : String(value));
    } else {
      element[name] = value;
    }
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

// Hues far enough apart to tell people apart at a glance (red, orange, amber, green, cyan,
// blue, violet, magenta); the CSS gives them all the same saturation and lightness.
const HUES = [355, 25, 45, 145, 195, 225, 265, 310];

/** A stable hue for a name, so each person keeps their colour on every screen. */
export function hueOf(name) {
  let hash = 2166136261; // FNV-1a: a short, well-mixing string hash
  for (const char of name) hash = Math.imul(hash ^ char.codePointAt(0), 16777619) >>> 0;
  return HUES[hash % HUES.length];
}

/** The first letter of up to two words: "Python Lisbon" gives "PL". */
export function initials(name) {
  const words = name.trim().split(/\s+/).filter(Boolean);
  return words
    .slice(0, 2)
    .map((word) => Array.from(word)[0].toUpperCase())
    .join("");
}

/** A round avatar with the name's initial in the name's colour. Decorative: names are shown. */
export function avatar(name, className = "avatar") {
  const element = h("span", { className, "aria-hidden": "true" }, initials(name).slice(0, 1));
  // Setting a custom property through the CSSOM is allowed by the page's CSP; a style="" attribute
  // would not be.
  element.style.setProperty("--hue", String(hueOf(name)));
  return element;
}

const clock = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit" });
const day = new Intl.DateTimeFormat(undefined, { dateStyle: "medium" });
const full = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "short" });

export const formatClock = (date) => clock.format(date);
export const formatFull = (date) => full.format(date);

/** "Today at 14:05", "Yesterday at 09:12" or "12 Nov 2026 at 18:30", in the reader's locale. */
export function formatWhen(date, now = new Date()) {
  const midnight = new Date(now.getFullYear(), now.getMonth(), now.getDate());
  const dayMs = 24 * 60 * 60 * 1000;
  if (date >= midnight) return `Today at ${formatClock(date)}`;
  if (date >= new Date(midnight.getTime() - dayMs)) return `Yesterday at ${formatClock(date)}`;
  return `${day.format(date)} at ${formatClock(date)}`;
}
