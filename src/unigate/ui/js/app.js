// The dashboard's shell: sign-in, navigation and the hash router (#/page/arg?query). Each page
// is a module loaded when first opened: the overview's code is all a first visit fetches.

import { api, ApiError, canWrite, clearKey, getKey, setKey } from "./api.js";
import { errorBox, field, h, mount, spinner } from "./dom.js";
import { route } from "./nav.js";

const PAGES = [
  ["overview", "Overview", () => import("./pages/overview.js")],
  ["usage", "Usage", () => import("./pages/usage.js")],
  ["requests", "Requests", () => import("./pages/requests.js")],
  ["models", "Models", () => import("./pages/models.js")],
  ["keys", "Keys & teams", () => import("./pages/keys.js")],
  ["audit", "Audit log", () => import("./pages/audit.js")],
  ["playground", "Playground", () => import("./pages/playground.js")],
];

const root = document.getElementById("app");
let main = null;
let nav = null;
let generation = 0;

function signIn(message) {
  main = null;
  const input = h("input", { type: "password", name: "key", autocomplete: "current-password", required: true,
    placeholder: "sk-…", "aria-describedby": "signin-help" });
  const status = h("div", { "aria-live": "polite" }, message ? errorBox(new Error(message)) : null);
  const button = h("button", { type: "submit", class: "primary" }, "Sign in");
  const form = h("form", { class: "card signin", "aria-labelledby": "signin-title" },
    h("h1", { id: "signin-title" }, "unigate"),
    h("p", { id: "signin-help" }, "Sign in with the gateway's master key (UNIGATE_MASTER_KEY) or a key with the role "
      + "admin (or viewer, to look without changing anything). "
      + "It is kept in this tab only, and sent only to this gateway."),
    field("Admin key", input), button, status);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const key = input.value.trim();
    button.disabled = true;
    mount(status, spinner("Checking the key…"));
    try {
      // a 403 for a key without an admin role; else who it is (needs no state)
      const me = await api("/admin/whoami", { key });
      setKey(key, me.role);
      shell();
    } catch (e) {
      const text = e instanceof ApiError && e.status === 401 ? `This key was not accepted: ${e.message}`
        : e instanceof ApiError && e.status === 403 ? `This key is not an admin key: ${e.message}`
          : e.message;
      mount(status, errorBox(new Error(text)));
      input.select();
    } finally {
      button.disabled = false;
    }
  });
  mount(root, h("main", { id: "main", class: "signin-page" }, form));
  input.focus();
}

function shell() {
  nav = h("nav", { "aria-label": "Pages" },
    h("ul", null, PAGES.map(([id, label]) => h("li", null, h("a", { href: `#/${id}`, "data-page": id }, label)))));
  const signOut = h("button", { type: "button", class: "link", onclick: () => { clearKey(); signIn(); } }, "Sign out");
  const viewer = canWrite() ? null
    : h("span", { class: "badge", title: "This key may look but not change anything", "data-testid": "read-only" }, "read only");
  main = h("main", { id: "main", tabindex: "-1" });
  mount(root, h("header", { class: "top" }, h("a", { class: "brand", href: "#/overview" }, "unigate"), nav, viewer, signOut),
    main);
  render();
}

async function render() {
  if (!main) return;
  const { page, arg, query } = route();
  const entry = PAGES.find((p) => p[0] === page);
  for (const a of nav.querySelectorAll("a")) {
    if (a.dataset.page === page) {
      a.setAttribute("aria-current", "page");
      // on a phone the navigation scrolls sideways: keep the current page's link in sight
      a.scrollIntoView({ block: "nearest", inline: "nearest" });
    } else {
      a.removeAttribute("aria-current");
    }
  }
  const mine = ++generation;
  if (!entry) {
    mount(main, h("h1", null, "Not found"), h("p", null, "No such page. ", h("a", { href: "#/overview" }, "Overview")));
    return;
  }
  document.title = `${entry[1]} · unigate`;
  mount(main, spinner());
  try {
    const mod = await entry[2]();
    const view = h("div", { class: "page", "data-page": page });
    // a page renders into its own element: one still loading when the operator moved on is dropped
    await mod.render(view, { arg, query, isCurrent: () => mine === generation });
    if (mine === generation) mount(main, view);
  } catch (e) {
    if (mine === generation) mount(main, h("h1", null, entry[1]), errorBox(e));
  }
}

window.addEventListener("hashchange", () => render());
window.addEventListener("unigate:unauthorized", () => {
  clearKey();
  signIn("The gateway no longer accepts this key: sign in again.");
});

if (getKey()) shell();
else signIn();
