// The session page, /s/{share_token}: the shared editor, who is here, the connection state,
// read-only for VIEWERs (with the reason), the edit history.
import { h, clear } from "../dom.js";
import { rememberLink } from "../links.js";
import { createEditor } from "./editor.js";
import { ControlChannel } from "./control.js";
import { connectionStatus } from "./status.js";
import { memberPanel } from "./members.js";
import { historyPanel } from "./history.js";
import { publishPanel } from "./publish.js";
import { runPanel } from "./run.js";
import { hasEndpoint } from "../api.js";

const READ_ONLY_REASON = {
  VIEWER: "Read-only: you are a VIEWER in this session. An OWNER can make you an EDITOR.",
  joining: "Joining the session…",
};

export function openSessionPage(main, me, shareToken, { navigate }) {
  const editor = createEditor(h("div"), shareToken, me);
  const status = connectionStatus(editor.provider, editor.ydoc);
  const members = memberPanel(me, editor.provider.awareness);
  const historyView = historyPanel(editor.ytext);
  const runner = runPanel(editor.ytext);
  const notice = h("p", { class: "notice", id: "session-notice", role: "status", hidden: true });
  const publish = publishPanel({
    navigate,
    notify(content) {
      clear(notice, content);
      notice.hidden = false;
    },
  });
  const title = h("h1", { class: "session-title", id: "session-title", dir: "auto" }, "Session");
  const roleBadge = h("span", { class: "role", id: "my-role" });
  const banner = h("p", { class: "banner", id: "read-only-reason", role: "note" }, READ_ONLY_REASON.joining);
  const shareUrl = `${location.origin}/s/${encodeURIComponent(shareToken)}`;
  const copy = h("button", { class: "link", onclick: () => navigator.clipboard?.writeText(shareUrl) }, "Copy share link");

  const layout = h(
    "div",
    { class: "session-layout" },
    h("div", { class: "session-head" }, title, roleBadge, status.el, copy),
    banner,
    notice,
    h("div", { class: "session-body" },
      h("div", { class: "editor-wrap", id: "editor" }, editor.view.dom),
      h("aside", { class: "sidebar" }, members.el, runner.el, publish.el, historyView.el),
    ),
  );
  clear(main, layout);

  function applyRole(role) {
    roleBadge.textContent = role;
    const canEdit = role === "EDITOR" || role === "OWNER";
    editor.setEditable(canEdit);
    banner.hidden = canEdit;
    banner.textContent = READ_ONLY_REASON[role] || `Read-only: your role is ${role}.`;
    layout.dataset.role = role;
  }

  const control = new ControlChannel(shareToken, {
    welcome(message) {
      title.textContent = message.session.name;
      document.title = `${message.session.name} · Prompt Studio`;
      rememberLink(message.session.id, shareToken);
      applyRole(message.role);
      members.setSession(message.session.id, message.role);
      historyView.setSession(message.session.id, message.role);
      hasEndpoint("POST", "/api/sessions/{session_id}/publish").then((yes) => {
        if (yes) publish.setSession(message.session.id, message.role);
      });
      hasEndpoint("POST", "/api/runs").then((yes) => {
        if (yes) runner.setSession(message.session.id);
      });
    },
    role(role) {
      applyRole(role);
      members.setRole(role);
      historyView.setRole(role);
      publish.setRole(role);
    },
    published(event) {
      publish.published(event, members);
    },
    presence() {
      members.changed();
    },
    fatal(code, reason) {
      editor.provider.disconnect();
      editor.setEditable(false);
      clear(
        main,
        h("section", { class: "card fatal", id: "session-closed", dataset: { code: String(code) } },
          h("h1", {}, "This session is closed to you"),
          h("p", {}, reason),
          h("a", { class: "button", href: "/", onclick: (e) => { e.preventDefault(); navigate("/"); } }, "Back to the sessions"),
        ),
      );
    },
  });

  // A handle for debugging in the console (and for the browser tests).
  window.promptStudio = { view: editor.view, provider: editor.provider, ydoc: editor.ydoc };

  return () => {
    control.close();
    members.destroy();
    historyView.destroy();
    runner.destroy();
    status.destroy();
    editor.destroy();
    delete window.promptStudio;
  };
}
