// One prompt: its versions (newest first) with their text, labels (set, move, remove) and the
// diff between any two versions.
import { api } from "../api.js";
import { h, clear, formatTime } from "../dom.js";
import { diffView } from "./diff.js";
import { rememberLink } from "../links.js";

const PAGE = 50;
const LABEL_PATTERN = "[a-z0-9._\\-]{1,64}";

export function renderPrompt(main, promptId, { navigate }) {
  const error = h("p", { class: "error", role: "alert" });
  const title = h("h1", { class: "session-title", id: "prompt-title", dir: "auto" }, "Prompt");
  const labels = h("ul", { class: "labels", id: "prompt-labels" });
  const versions = h("ol", { class: "versions", id: "prompt-versions" });
  const shown = h("pre", { class: "preview", id: "version-text", dir: "auto", hidden: true });
  const fromSelect = h("select", { id: "diff-from", "aria-label": "Diff from version" });
  const toSelect = h("select", { id: "diff-to", "aria-label": "Diff to version" });
  const diffOut = h("div", { id: "diff-output" });
  const labelName = h("input", { id: "label-name", placeholder: "production", pattern: LABEL_PATTERN, required: true, maxlength: 64 });
  const labelVersion = h("select", { id: "label-version", "aria-label": "Version for the label" });
  const labelForm = h("form", { class: "inline", id: "set-label" }, labelName, labelVersion, h("button", { type: "submit" }, "Set label"));
  const diffForm = h("form", { class: "inline", id: "diff-form" }, "From", fromSelect, "to", toSelect, h("button", { type: "submit" }, "Diff"));
  const openLive = h("button", { class: "primary", id: "open-live" }, "Edit in a live session");
  openLive.addEventListener("click", async () => {
    error.textContent = "";
    try {
      const session = await api("POST", "/sessions", { name: detail ? detail.name : "Prompt", prompt_id: promptId });
      rememberLink(session.id, session.share_token);
      navigate(`/s/${encodeURIComponent(session.share_token)}`);
    } catch (err) {
      error.textContent = err.message;
    }
  });
  let detail = null;
  let items = [];

  async function load() {
    error.textContent = "";
    try {
      detail = await api("GET", `/prompts/${encodeURIComponent(promptId)}`);
      const page = await api("GET", `/prompts/${encodeURIComponent(promptId)}/versions?limit=${PAGE}&offset=0`);
      items = page.items;
    } catch (err) {
      error.textContent = err.message;
      return;
    }
    title.textContent = detail.name;
    document.title = `${detail.name} · Prompt Studio`;
    const byVersion = {};
    for (const [label, number] of Object.entries(detail.labels || {})) (byVersion[number] ||= []).push(label);
    clear(
      labels,
      Object.keys(detail.labels || {}).length
        ? Object.entries(detail.labels).map(([label, number]) =>
            h("li", { class: "label", dataset: { label } },
              h("span", { class: "tag" }, label), ` → v${number} `,
              // "latest" moves by itself on every save.
              label === "latest" ? null : h("button", { class: "link", "aria-label": `Remove label ${label}`, onclick: () => removeLabel(label) }, "remove"),
            ),
          )
        : [h("li", { class: "hint" }, "No labels yet.")],
    );
    clear(
      versions,
      items.length
        ? items.map((v) =>
            h("li", { class: "version", dataset: { version: String(v.version) } },
              h("button", { class: "link", onclick: () => show(v) }, `v${v.version}`),
              (byVersion[v.version] || []).map((l) => h("span", { class: "tag" }, l)),
              " ", h("span", { dir: "auto" }, v.message || ""),
              h("div", { class: "hint" }, formatTime(v.created_at), v.source && v.source.session_id ? " · from a live session" : ""),
            ),
          )
        : [h("li", { class: "hint" }, "No versions yet: publish one from a session.")],
    );
    const options = () => items.map((v) => h("option", { value: String(v.version) }, `v${v.version}`));
    clear(fromSelect, options());
    clear(toSelect, options());
    clear(labelVersion, options());
    if (items.length > 1) fromSelect.value = String(items[1].version);
  }

  function show(version) {
    shown.hidden = false;
    shown.textContent =
      version.content !== null && version.content !== undefined
        ? version.content
        : Object.entries(version.sections || {}).map(([k, t]) => `[${k}]\n${t}`).join("\n\n");
  }

  async function removeLabel(label) {
    try {
      await api("DELETE", `/prompts/${encodeURIComponent(promptId)}/labels/${encodeURIComponent(label)}`);
      await load();
    } catch (err) {
      error.textContent = err.message;
    }
  }

  labelForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    try {
      await api("PUT", `/prompts/${encodeURIComponent(promptId)}/labels/${encodeURIComponent(labelName.value.trim())}`, {
        version: Number(labelVersion.value),
      });
      await load();
    } catch (err) {
      error.textContent = err.message;
    }
  });
  diffForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    try {
      const diff = await api("GET", `/prompts/${encodeURIComponent(promptId)}/diff?from=${fromSelect.value}&to=${toSelect.value}`);
      clear(diffOut, diffView(diff));
    } catch (err) {
      error.textContent = err.message;
    }
  });

  clear(
    main,
    h("section", { class: "stack" },
      h("div", { class: "session-head" }, title, openLive),
      error,
      h("div", { class: "prompt-layout" },
        h("section", { class: "panel" }, h("h2", {}, "Versions"), versions, shown),
        h("aside", { class: "sidebar" },
          h("section", { class: "panel" }, h("h2", {}, "Labels"), labels, labelForm),
          h("section", { class: "panel" }, h("h2", {}, "Compare versions"), diffForm, diffOut),
        ),
      ),
    ),
  );
  load();
}
