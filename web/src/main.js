// The studio's single page: "/" signs in or lists sessions, "/s/{share_token}" co-edits one.
import "./style.css";
import { api, ApiError } from "./api.js";
import { forgetLoginToken, loginToken } from "./auth.js";
import { h, clear } from "./dom.js";
import { renderSignIn } from "./signin.js";
import { renderSessionList } from "./sessions.js";
import { openSessionPage } from "./session/page.js";

const root = document.getElementById("app");
let teardown = null;

export function navigate(path) {
  history.pushState(null, "", path);
  route();
}

function signOut() {
  forgetLoginToken();
  navigate("/");
}

function header(me) {
  return h(
    "header",
    { class: "topbar" },
    h("a", { class: "brand", href: "/", onclick: link("/") }, "Prompt Studio"),
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
  const match = location.pathname.match(/^\/s\/([^/]+)\/?$/);
  if (match) {
    teardown = openSessionPage(main, me, decodeURIComponent(match[1]), { navigate });
  } else {
    renderSessionList(main, me, { navigate });
  }
}

window.addEventListener("popstate", route);
route();
