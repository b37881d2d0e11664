// The tenant's collaboration sessions: list (paged), create, open by link.
import { api } from "./api.js";
import { h, clear, formatTime } from "./dom.js";
import { knownLink, rememberLink, tokenFromLink } from "./links.js";

const PAGE = 20;

export function renderSessionList(main, me, { navigate }) {
  const error = h("p", { class: "error", role: "alert" });
  const list = h("ul", { class: "sessions", id: "session-list" });
  const pager = h("div", { class: "pager" });
  const name = h("input", { id: "new-session-name", name: "name", required: true, maxlength: 200, placeholder: "Support bot" });
  const create = h(
    "form",
    { class: "card inline", id: "create-session" },
    h("label", { for: "new-session-name" }, "New session"),
    name,
    h("button", { type: "submit", class: "primary" }, "Create"),
  );
  const linkInput = h("input", { id: "join-link", name: "link", placeholder: "https://…/s/… or share token" });
  const join = h(
    "form",
    { class: "card inline", id: "join-session" },
    h("label", { for: "join-link" }, "Open a share link"),
    linkInput,
    h("button", { type: "submit" }, "Open"),
  );

  create.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    try {
      const session = await api("POST", "/sessions", { name: name.value.trim() });
      rememberLink(session.id, session.share_token);
      navigate(`/s/${encodeURIComponent(session.share_token)}`);
    } catch (err) {
      error.textContent = err.message;
    }
  });
  join.addEventListener("submit", (event) => {
    event.preventDefault();
    const token = tokenFromLink(linkInput.value);
    if (token) navigate(`/s/${encodeURIComponent(token)}`);
    else error.textContent = "That is not a share link.";
  });

  async function newLink(session) {
    const ok = confirm(`Make a new link for "${session.name}"? The current link stops working for everyone.`);
    if (!ok) return;
    try {
      const rotated = await api("POST", `/sessions/${session.id}/share-token`);
      rememberLink(session.id, rotated.share_token);
      navigate(`/s/${encodeURIComponent(rotated.share_token)}`);
    } catch (err) {
      error.textContent = err.message;
    }
  }

  function row(session) {
    const token = knownLink(session.id);
    const action = token
      ? h("a", { class: "button", href: `/s/${encodeURIComponent(token)}`, onclick: (e) => { e.preventDefault(); navigate(`/s/${encodeURIComponent(token)}`); } }, "Open")
      : session.owner_id === me.id
        ? h("button", { onclick: () => newLink(session) }, "New link")
        : h("span", { class: "hint" }, "ask the owner for the link");
    return h(
      "li",
      { class: "session", dataset: { sessionId: session.id } },
      h("div", { class: "session-main" },
        h("strong", { dir: "auto" }, session.name),
        session.description ? h("span", { class: "hint", dir: "auto" }, session.description) : null,
      ),
      h("span", { class: "hint" }, `${session.member_count} member${session.member_count === 1 ? "" : "s"} · ${formatTime(session.updated_at)}`),
      action,
    );
  }

  async function load(offset) {
    try {
      const page = await api("GET", `/sessions?limit=${PAGE}&offset=${offset}`);
      clear(list, page.items.length ? page.items.map(row) : [h("li", { class: "hint" }, "No sessions yet: create one.")]);
      clear(
        pager,
        offset > 0 ? h("button", { onclick: () => load(Math.max(0, offset - PAGE)) }, "Newer") : null,
        h("span", { class: "hint" }, page.total ? `${offset + 1}–${offset + page.items.length} of ${page.total}` : ""),
        offset + PAGE < page.total ? h("button", { onclick: () => load(offset + PAGE) }, "Older") : null,
      );
    } catch (err) {
      error.textContent = err.message;
    }
  }

  clear(main, h("section", { class: "stack" }, h("h1", {}, "Sessions"), create, join, error, list, pager));
  load(0);
}
