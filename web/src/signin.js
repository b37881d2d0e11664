// Sign in with a login token (minted by `prompt-studio token --email …`).
import { api, ApiError } from "./api.js";
import { forgetLoginToken, keepLoginToken } from "./auth.js";
import { h, clear } from "./dom.js";

export function renderSignIn(main, onSignedIn, notice) {
  const input = h("input", {
    id: "login-token",
    name: "token",
    type: "password",
    autocomplete: "current-password",
    required: true,
    placeholder: "login token",
  });
  const message = h("p", { class: "error", role: "alert" }, notice || "");
  const form = h(
    "form",
    { class: "card signin", id: "sign-in" },
    h("h1", {}, "Sign in"),
    h("p", { class: "hint" }, "Paste the login token printed by ", h("code", {}, "prompt-studio token --email you@example.com"), "."),
    h("label", { for: "login-token" }, "Login token"),
    input,
    h("button", { type: "submit", class: "primary" }, "Sign in"),
    message,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const token = input.value.trim();
    if (!token) return;
    keepLoginToken(token);
    try {
      await api("GET", "/me");
    } catch (err) {
      forgetLoginToken();
      message.textContent =
        err instanceof ApiError && err.status === 401
          ? "That login token is unknown or has expired."
          : err.message;
      return;
    }
    onSignedIn();
  });
  clear(main, form);
  input.focus();
}
