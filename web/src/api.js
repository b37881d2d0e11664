// REST calls to /api with the login token; every error becomes an ApiError with the server's
// `{"error": {"code", "message", "field"}}` fields.
import { loginToken } from "./auth.js";

export class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

export async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  const token = loginToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(`/api${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
    });
  } catch (err) {
    throw new ApiError(0, "network", `the server cannot be reached (${err.message})`);
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    const error = (data && data.error) || {};
    throw new ApiError(
      response.status,
      error.code || "http_error",
      error.message || `${method} ${path} failed with HTTP ${response.status}`,
      error.field,
    );
  }
  return data;
}

// Whether the server offers an endpoint (other areas of the API arrive over time).
let openapi = null;
export async function hasEndpoint(method, path) {
  if (openapi === null) {
    openapi = fetch("/openapi.json")
      .then((r) => (r.ok ? r.json() : { paths: {} }))
      .catch(() => ({ paths: {} }));
  }
  const spec = await openapi;
  const item = (spec.paths || {})[path];
  return Boolean(item && item[method.toLowerCase()]);
}
