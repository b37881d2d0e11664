// The studio's single page: "/" signs in or lists sessions, "/s/{share_token}" co-edits one.
import "./style.css";
import { api, ApiError, hasEndpoint } from "./api.js";
import { forgetLoginToken, loginToken } from "./auth.js";
import { h, clear } from "./dom.js";
import { renderSignIn } from "./signin.js";
import { renderSessionList } from "./sessions.js";
import { openSessionPage } from "./session/page.js";
import { renderPromptList } from "./prompts/list.js";
import { renderPrompt } from "./prompts/detail.js";

const root = document.getElementById("app");
let teardown = null;

export function navigate(path) {
  history.pushState(null, "", path);
  route();
}

// Ends the login session on the server too (when it offers that), so the token is dead
// everywhere, not just forgotten here; its open websockets close.
async function signOut() {
  if (await hasEndpoint("DELETE", "/api/auth/token")) {
    try {
      await api("DELETE", "/auth/token");
    } catch {
      // Signing out here must work even when the server cannot be reached.
    }
  }
  forgetLoginToken();
  navigate("/");
}

// The prompts area appears once the server offers it.
const nav = h("nav", { class: "nav" }, h("a", { href: "/", onclick: link("/") }, "Sessions"));
hasEndpoint("GET", "/api/prompts").then((yes) => {
  if (yes) nav.append(h("a", { href: "/prompts", id: "nav-prompts", onclick: link("/prompts") }, "Prompts"));
});

function header(me) {
  return h(
    "header",
    { class: "topbar" },
    h("a", { class: "brand", href: "/", onclick: link("/") }, "Prompt Studio"),
    me ? nav : null,
    me
      ? h(
          "div",
          { class: "whoami" },
          h("span", { class: "swatch", style: `background:${me.color}` }),
          h("span", { class: "me-name" }, me.name),
          h("button", { class: "link", id: "sign-out", onclick: signOut }, "Sign out"),
        )
      : null,
  );
}

function link(path) {
  return (event) => {
    event.preventDefault();
    navigate(path);
  };
}

async function route() {
  if (teardown) {
    teardown();
    teardown = null;
  }
  const main = h("main", { class: "page" });
  if (!loginToken()) {
    clear(root, header(null), main);
    renderSignIn(main, () => route());
    return;
  }
  let me;
  try {
    me = await api("GET", "/me");
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      forgetLoginToken();
      clear(root, header(null), main);
      renderSignIn(main, () => route(), "Your login token is unknown or has expired.");
      return;
    }
    clear(root, header(null), h("main", { class: "page" }, h("p", { class: "error" }, err.message)));
    return;
  }
  clear(root, header(me), main);
  const path = location.pathname;
  const session = path.match(/^\/s\/([^/]+)\/?$/);
  const prompt = path.match(/^\/p\/([^/]+)\/?$/);
  if (session) {
    teardown = openSessionPage(main, me, decodeURIComponent(session[1]), { navigate });
  } else if (prompt) {
    renderPrompt(main, decodeURIComponent(prompt[1]), { navigate });
  } else if (path === "/prompts") {
    renderPromptList(main, { navigate });
  } else {
    renderSessionList(main, me, { navigate });
  }
}

window.addEventListener("popstate", route);
route();
