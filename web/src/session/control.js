// A JSON-protocol side channel to the same session: it tells the page the session's id, the
// caller's role (and every later role change), the members and their presence, and why the
// server refused or ended the session. The text itself travels only over y-websocket.
const FATAL = {
  4401: "Your login token is unknown or has expired: sign in again.",
  4403: "You are not a member of this session any more.",
  4404: "This share link is unknown or was replaced by a new one.",
  4410: "This session has been deactivated.",
};
const MAX_BACKOFF_MS = 5000;

export class ControlChannel {
  constructor(shareToken, handlers) {
    this.url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws/${encodeURIComponent(shareToken)}?protocol=json`;
    this.handlers = handlers;
    this.attempt = 0;
    this.stopped = false;
    this.timer = null;
    this.open();
  }

  open() {
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.addEventListener("open", () => ws.send(JSON.stringify({ type: "ping", id: "hello" })));
    ws.addEventListener("message", (event) => {
      if (typeof event.data !== "string") return;
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      if (message.type === "welcome") {
        this.attempt = 0;
        this.handlers.welcome(message);
      } else if (message.type === "role") {
        this.handlers.role(message.role);
      } else if (message.type === "presence" && (message.event === "join" || message.event === "leave")) {
        this.handlers.presence(message);
      } else if (message.type === "published") {
        this.handlers.published(message);
      }
    });
    ws.addEventListener("close", (event) => {
      if (this.stopped) return;
      const fatal = FATAL[event.code];
      if (fatal) {
        this.stopped = true;
        this.handlers.fatal(event.code, fatal);
        return;
      }
      const delay = Math.min(MAX_BACKOFF_MS, 100 * 2 ** this.attempt++);
      this.timer = setTimeout(() => this.open(), delay);
    });
  }

  close() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.ws) this.ws.close();
  }
}
