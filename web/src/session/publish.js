// "Publish as version": the live text becomes a new version of the session's prompt (or of a
// prompt picked here, or a new one). Everyone in the session is told when anyone publishes.
import { api } from "../api.js";
import { h, clear } from "../dom.js";

const NEW_PROMPT = "__new__";

export function publishPanel({ navigate, notify }) {
  const select = h("select", { id: "publish-prompt", "aria-label": "Prompt to publish into" });
  const newName = h("input", { id: "publish-new-name", placeholder: "New prompt name", maxlength: 200, hidden: true });
  const message = h("input", { id: "publish-message", placeholder: "What changed (optional)", maxlength: 2000 });
  const error = h("p", { class: "error", role: "alert" });
  const form = h(
    "form",
    { class: "stack", id: "publish-form" },
    select,
    newName,
    message,
    h("div", {}, h("button", { type: "submit", class: "primary", id: "publish-button" }, "Publish as version")),
  );
  const el = h("section", { class: "panel", id: "publish-panel", hidden: true }, h("h2", {}, "Publish"), form, error);
  let sessionId = null;
  let sessionPromptId = null;
  let enabled = false;

  select.addEventListener("change", () => {
    newName.hidden = select.value !== NEW_PROMPT;
    newName.required = select.value === NEW_PROMPT;
  });

  async function loadPrompts() {
    const [session, prompts] = await Promise.all([
      api("GET", `/sessions/${sessionId}`),
      api("GET", "/prompts?limit=100&offset=0"),
    ]);
    sessionPromptId = session.prompt_id || null;
    const options = prompts.items.map((p) => h("option", { value: p.id, selected: p.id === sessionPromptId }, p.name));
    clear(select, options, h("option", { value: NEW_PROMPT, selected: !sessionPromptId }, "New prompt…"));
    select.dispatchEvent(new Event("change"));
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    try {
      let promptId = select.value;
      if (promptId === NEW_PROMPT) {
        const prompt = await api("POST", "/prompts", { name: newName.value.trim() });
        promptId = prompt.id;
      }
      const body = { prompt_id: promptId };
      if (message.value.trim()) body.message = message.value.trim();
      const version = await api("POST", `/sessions/${sessionId}/publish`, body);
      message.value = "";
      newName.value = "";
      await loadPrompts();
      showPublished(version.prompt_id, version.version, "you");
    } catch (err) {
      error.textContent = err.message;
    }
  });

  function showPublished(promptId, version, who) {
    const href = `/p/${encodeURIComponent(promptId)}`;
    notify([
      `Published as version ${version} by ${who} · `,
      h("a", { href, onclick: (e) => { e.preventDefault(); navigate(href); } }, "see the versions"),
    ]);
  }

  return {
    el,
    async setSession(id, currentRole) {
      sessionId = id;
      enabled = true;
      this.setRole(currentRole);
      try {
        await loadPrompts();
      } catch (err) {
        error.textContent = err.message;
      }
    },
    setRole(role) {
      el.hidden = !enabled || !(role === "EDITOR" || role === "OWNER");
    },
    published(event, members) {
      const who = members.nameOf(event.user_id) || "someone";
      showPublished(event.prompt_id, event.version, who);
    },
  };
}
