// The edit history: newest edits first, the text right after any one of them, and restoring
// it (EDITOR and OWNER) as a new change every client receives.
import { api } from "../api.js";
import { h, clear, formatTime } from "../dom.js";

const PAGE = 25;
const PREVIEW_CHARS = 40;

function describe(operation) {
  const content = operation.content || "";
  const snippet = content.length > PREVIEW_CHARS ? `${content.slice(0, PREVIEW_CHARS)}…` : content;
  switch (operation.type) {
    case "insert":
      return [`inserted at ${operation.position}: `, h("q", { dir: "auto" }, snippet)];
    case "delete":
      return `deleted ${operation.length} at ${operation.position}`;
    case "replace":
      return [`replaced ${operation.length} at ${operation.position} with `, h("q", { dir: "auto" }, snippet)];
    default:
      return operation.type || "change";
  }
}

export function historyPanel(ytext) {
  const list = h("ol", { class: "history", id: "history-list" });
  const preview = h("pre", { class: "preview", id: "history-preview", dir: "auto", hidden: true });
  const actions = h("div", { class: "preview-actions" });
  const error = h("p", { class: "error", role: "alert" });
  const more = h("button", { class: "link", hidden: true }, "Older edits");
  const el = h(
    "section",
    { class: "panel", "aria-labelledby": "history-title" },
    h("h2", { id: "history-title" }, "History"),
    list,
    more,
    preview,
    actions,
    error,
  );
  let sessionId = null;
  let canRestore = false;
  let shown = PAGE;
  let timer = null;

  async function refresh() {
    if (!sessionId) return;
    try {
      const page = await api("GET", `/sessions/${sessionId}/history?limit=${shown}&offset=0`);
      clear(
        list,
        page.items.length
          ? page.items.map((edit) =>
              h(
                "li",
                { class: "edit", dataset: { editId: String(edit.id), origin: edit.origin } },
                h("button", { class: "link", onclick: () => show(edit) }, formatTime(edit.created_at)),
                " ",
                h("strong", {}, edit.user ? edit.user.name : "someone"),
                edit.origin !== "user" ? h("span", { class: "tag" }, edit.origin) : null,
                h("div", { class: "hint" }, describe(edit.operation || {})),
              ),
            )
          : [h("li", { class: "hint" }, "No edits yet.")],
      );
      more.hidden = page.total <= shown;
    } catch (err) {
      error.textContent = err.message;
    }
  }

  async function show(edit) {
    error.textContent = "";
    try {
      const detail = await api("GET", `/sessions/${sessionId}/history/${edit.id}`);
      preview.hidden = false;
      preview.textContent = detail.content;
      clear(
        actions,
        h("span", { class: "hint" }, `Text after edit ${edit.id}`),
        canRestore
          ? h("button", { class: "primary", id: "restore-edit", onclick: () => restore(edit.id) }, "Restore this text")
          : null,
        h("button", { class: "link", onclick: () => { preview.hidden = true; clear(actions); } }, "Close"),
      );
    } catch (err) {
      error.textContent = err.message;
    }
  }

  async function restore(editId) {
    error.textContent = "";
    try {
      await api("POST", `/sessions/${sessionId}/restore`, { edit_id: editId });
      preview.hidden = true;
      clear(actions);
      refresh();
    } catch (err) {
      error.textContent = err.message;
    }
  }

  more.addEventListener("click", () => {
    shown += PAGE;
    refresh();
  });
  // Edits are written in group commits: refresh a moment after the text settles.
  const observer = () => {
    clearTimeout(timer);
    timer = setTimeout(refresh, 800);
  };
  ytext.observe(observer);

  return {
    el,
    setSession(id, role) {
      sessionId = id;
      canRestore = role === "EDITOR" || role === "OWNER";
      refresh();
    },
    setRole(role) {
      canRestore = role === "EDITOR" || role === "OWNER";
    },
    destroy() {
      clearTimeout(timer);
      ytext.unobserve(observer);
    },
  };
}
