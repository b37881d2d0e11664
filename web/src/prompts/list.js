// The tenant's prompts: list (paged) and create (optionally with version 1).
import { api } from "../api.js";
import { h, clear, formatTime } from "../dom.js";

const PAGE = 20;

export function renderPromptList(main, { navigate }) {
  const error = h("p", { class: "error", role: "alert" });
  const list = h("ul", { class: "sessions", id: "prompt-list" });
  const pager = h("div", { class: "pager" });
  const name = h("input", { id: "new-prompt-name", name: "name", required: true, maxlength: 200, placeholder: "Refund policy answer" });
  const content = h("textarea", { id: "new-prompt-content", name: "content", rows: 3, dir: "auto", placeholder: "Version 1 text (optional)" });
  const create = h(
    "form",
    { class: "card stack", id: "create-prompt" },
    h("label", { for: "new-prompt-name" }, "New prompt"),
    name,
    content,
    h("div", {}, h("button", { type: "submit", class: "primary" }, "Create")),
  );
  create.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    const body = { name: name.value.trim() };
    if (content.value) body.version = { content: content.value, message: "first version" };
    try {
      const prompt = await api("POST", "/prompts", body);
      navigate(`/p/${encodeURIComponent(prompt.id)}`);
    } catch (err) {
      error.textContent = err.message;
    }
  });

  function row(prompt) {
    const href = `/p/${encodeURIComponent(prompt.id)}`;
    return h(
      "li",
      { class: "session prompt", dataset: { promptId: prompt.id } },
      h("div", { class: "session-main" },
        h("a", { href, onclick: (e) => { e.preventDefault(); navigate(href); } }, h("strong", { dir: "auto" }, prompt.name)),
        prompt.description ? h("span", { class: "hint", dir: "auto" }, prompt.description) : null,
      ),
      h("span", { class: "hint" }, formatTime(prompt.updated_at)),
    );
  }

  async function load(offset) {
    try {
      const page = await api("GET", `/prompts?limit=${PAGE}&offset=${offset}`);
      clear(list, page.items.length ? page.items.map(row) : [h("li", { class: "hint" }, "No prompts yet.")]);
      clear(
        pager,
        offset > 0 ? h("button", { onclick: () => load(Math.max(0, offset - PAGE)) }, "Newer") : null,
        offset + PAGE < page.total ? h("button", { onclick: () => load(offset + PAGE) }, "Older") : null,
      );
    } catch (err) {
      error.textContent = err.message;
    }
  }

  clear(main, h("section", { class: "stack" }, h("h1", {}, "Prompts"), create, error, list, pager));
  load(0);
}
