// The member list: everyone in the session with their role, colour and whether they are here
// now (from the server's roster and the live awareness states). OWNERs can change roles.
import { api } from "../api.js";
import { h, clear } from "../dom.js";

const ROLES = ["VIEWER", "EDITOR", "OWNER"];

export function memberPanel(me, awareness) {
  const list = h("ul", { class: "members", id: "member-list" });
  const error = h("p", { class: "error", role: "alert" });
  const el = h("section", { class: "panel", "aria-labelledby": "members-title" }, h("h2", { id: "members-title" }, "Members"), list, error);
  let sessionId = null;
  let myRole = null;
  let members = [];
  let refreshTimer = null;

  function liveUserIds() {
    const ids = new Set();
    awareness.getStates().forEach((state) => {
      if (state.user && state.user.id) ids.add(state.user.id);
    });
    return ids;
  }

  async function setRole(member, role) {
    error.textContent = "";
    try {
      await api("PUT", `/sessions/${sessionId}/members/${member.user_id}`, { role });
    } catch (err) {
      error.textContent = err.message;
    }
    refresh();
  }

  function render() {
    const live = liveUserIds();
    clear(
      list,
      members.map((member) => {
        const online = member.online || live.has(member.user_id);
        const role =
          myRole === "OWNER" && member.user_id !== me.id
            ? h(
                "select",
                { class: "role-select", "aria-label": `Role of ${member.name}`, onchange: (e) => setRole(member, e.target.value) },
                ROLES.map((r) => h("option", { value: r, selected: r === member.role }, r)),
              )
            : h("span", { class: "role" }, member.role);
        return h(
          "li",
          { class: "member", dataset: { userId: member.user_id, online: String(online), role: member.role } },
          h("span", { class: "swatch", style: `background:${member.color}` }),
          h("span", { class: "member-name", dir: "auto" }, member.name + (member.user_id === me.id ? " (you)" : "")),
          h("span", { class: online ? "presence online" : "presence" }, online ? "online" : "away"),
          role,
        );
      }),
    );
  }

  async function refresh() {
    if (!sessionId) return;
    try {
      const body = await api("GET", `/sessions/${sessionId}/members`);
      members = body.items || body.members || body;
      render();
    } catch (err) {
      error.textContent = err.message;
    }
  }

  awareness.on("change", render);
  const poll = setInterval(refresh, 30000);

  return {
    el,
    setSession(id, role) {
      sessionId = id;
      myRole = role;
      refresh();
    },
    setRole(role) {
      myRole = role;
      refresh();
    },
    nameOf(userId) {
      const member = members.find((m) => m.user_id === userId);
      return member ? member.name : null;
    },
    // Presence joins and leaves come in bursts on reconnection: refresh once per burst.
    changed() {
      clearTimeout(refreshTimer);
      refreshTimer = setTimeout(refresh, 250);
    },
    destroy() {
      clearInterval(poll);
      clearTimeout(refreshTimer);
      awareness.off("change", render);
    },
  };
}
