// Share tokens this browser has seen, by session id. The API hands a session's link out only
// when it is created or rotated, so the list can open the sessions this browser knows a link for.
const KEY = "prompt-studio:links";

function all() {
  try {
    const value = JSON.parse(localStorage.getItem(KEY) || "{}");
    return value && typeof value === "object" ? value : {};
  } catch {
    return {};
  }
}

export function rememberLink(sessionId, shareToken) {
  const links = all();
  links[sessionId] = shareToken;
  localStorage.setItem(KEY, JSON.stringify(links));
}

export function knownLink(sessionId) {
  return all()[sessionId] || null;
}

export function forgetLink(sessionId) {
  const links = all();
  delete links[sessionId];
  localStorage.setItem(KEY, JSON.stringify(links));
}

// "https://host/s/TOKEN", "/s/TOKEN" or a bare token → the token.
export function tokenFromLink(text) {
  const value = text.trim();
  const match = value.match(/\/s\/([^/?#\s]+)/);
  if (match) return decodeURIComponent(match[1]);
  return /^[A-Za-z0-9_-]+$/.test(value) ? value : null;
}
