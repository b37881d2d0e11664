// The login token lives in the cookie the server documents (`prompt_studio_token`), so the
// websockets (same origin) and REST calls carry it without putting it in any URL.
export const TOKEN_COOKIE = "prompt_studio_token";
const MAX_AGE_SECONDS = 30 * 24 * 3600;

export function loginToken() {
  for (const part of document.cookie.split(";")) {
    const [name, ...rest] = part.trim().split("=");
    if (name === TOKEN_COOKIE) return decodeURIComponent(rest.join("=")) || null;
  }
  return null;
}

export function keepLoginToken(token) {
  const secure = location.protocol === "https:" ? "; Secure" : "";
  document.cookie =
    `${TOKEN_COOKIE}=${encodeURIComponent(token)}; Path=/; Max-Age=${MAX_AGE_SECONDS}` +
    `; SameSite=Strict${secure}`;
}

export function forgetLoginToken() {
  document.cookie = `${TOKEN_COOKIE}=; Path=/; Max-Age=0; SameSite=Strict`;
}
