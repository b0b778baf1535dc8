// The two modal dialogs: the username prompt and "create a server / channel".
//
// Both are native <dialog> elements opened with showModal(): the browser traps the focus inside,
// Escape closes them, and focus returns to the button that opened them. No library needed.

const $ = (id) => document.getElementById(id);

const MAX_USERNAME = 32;
const USERNAME_KEY = "accord.username";

/** The username remembered in this browser, or null on the first visit. */
export function savedUsername() {
  try {
    return localStorage.getItem(USERNAME_KEY);
  } catch {
    return null; // storage disabled (private mode in some browsers): just ask every time
  }
}

function saveUsername(name) {
  try {
    localStorage.setItem(USERNAME_KEY, name);
  } catch {
    // not remembered; the page still works
  }
}

/**
 * Open `dialog`, call `submit()` on each submit, and resolve with what it returns. If it throws,
 * its message is shown in `errorElement` and the dialog stays open to fix the input. Resolves
 * with null when the dialog is cancelled (only if `cancellable`).
 */
function runDialog({ dialog, input, errorElement, cancelButton, cancellable, submit }) {
  return new Promise((resolve) => {
    const form = dialog.querySelector("form");
    const submitButton = form.querySelector('button[type="submit"]');
    const listening = new AbortController();
    const { signal } = listening;
    const finish = (value) => {
      listening.abort(); // removes every listener added below
      if (dialog.open) dialog.close();
      resolve(value);
    };
    const showError = (message) => {
      errorElement.textContent = message;
      input.setAttribute("aria-invalid", message ? "true" : "false");
    };

    form.addEventListener(
      "submit",
      async (event) => {
        event.preventDefault(); // keep the dialog open until submit() succeeds
        submitButton.disabled = true;
        try {
          finish(await submit(input.value));
        } catch (error) {
          showError(error.message);
          input.focus();
        } finally {
          submitButton.disabled = false;
        }
      },
      { signal },
    );
    cancelButton.hidden = !cancellable;
    cancelButton.addEventListener("click", () => finish(null), { signal });
    // Escape fires "cancel": allowed only when there is something to go back to.
    dialog.addEventListener(
      "cancel",
      (event) => (cancellable ? finish(null) : event.preventDefault()),
      { signal },
    );

    showError("");
    dialog.showModal();
    input.focus();
    input.select();
  });
}

/** Ask for a username (1 to 32 characters once trimmed, as the server checks) and remember it. */
export async function askUsername({ current = "", cancellable = false } = {}) {
  const input = $("username-input");
  input.value = current;
  const name = await runDialog({
    dialog: $("username-dialog"),
    input,
    errorElement: $("username-error"),
    cancelButton: $("username-cancel"),
    cancellable,
    submit: (value) => {
      const trimmed = value.trim();
      // Checked here because a refused WebSocket handshake cannot tell the page why.
      if (trimmed.length < 1 || trimmed.length > MAX_USERNAME) {
        throw new Error(`The username must be 1 to ${MAX_USERNAME} characters long once trimmed.`);
      }
      return trimmed;
    },
  });
  if (name !== null) saveUsername(name);
  return name;
}

/**
 * Ask for the name of a new server or channel and create it with `create(name)`.
 * No checks here on purpose: the API validates names and its error message is the one shown,
 * so the rules live in one place.
 */
export function askName({ title, text, label, placeholder, submitLabel, create }) {
  $("create-title").textContent = title;
  $("create-text").textContent = text;
  $("create-label").textContent = label;
  $("create-submit").textContent = submitLabel;
  const input = $("create-input");
  input.value = "";
  input.placeholder = placeholder;
  return runDialog({
    dialog: $("create-dialog"),
    input,
    errorElement: $("create-error"),
    cancelButton: $("create-cancel"),
    cancellable: true,
    submit: create,
  });
}
