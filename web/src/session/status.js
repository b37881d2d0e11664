// The connection state a person sees: connected / connecting / reconnecting / offline, and
// whether local edits are waiting to be sent (they are kept and sent on reconnection).
import { h } from "../dom.js";

export function connectionStatus(provider, ydoc) {
  const el = h("span", { class: "status", id: "connection-status", role: "status" });
  let everConnected = false;
  let status = "connecting";
  let pending = false;

  function render() {
    let state = status;
    if (!navigator.onLine) state = "offline";
    else if (status !== "connected" && everConnected) state = "reconnecting";
    else if (status === "connected" && !provider.synced) state = "syncing";
    const labels = {
      connected: "Connected",
      syncing: "Syncing…",
      connecting: "Connecting…",
      reconnecting: "Reconnecting…",
      offline: "Offline",
    };
    el.dataset.state = state;
    el.textContent = labels[state] + (pending && state !== "connected" ? " · edits kept, they will be sent when back online" : "");
  }

  provider.on("status", (event) => {
    status = event.status;
    if (status === "connected") everConnected = true;
    render();
  });
  provider.on("sync", (synced) => {
    if (synced) pending = false;
    render();
  });
  ydoc.on("update", (_update, origin) => {
    if (origin !== provider && status !== "connected") {
      pending = true;
      render();
    }
  });
  const onNetwork = () => render();
  window.addEventListener("online", onNetwork);
  window.addEventListener("offline", onNetwork);
  render();
  return {
    el,
    destroy() {
      window.removeEventListener("online", onNetwork);
      window.removeEventListener("offline", onNetwork);
    },
  };
}
