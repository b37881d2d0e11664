// The run panel: run the live text (as it is now) against a model with values for its
// {{variables}}, watch the answer stream in, and rate it.
import { api, ApiError } from "../api.js";
import { loginToken } from "../auth.js";
import { h, clear } from "../dom.js";

// The server's placeholder grammar (server/prompts/variables.py).
const PLACEHOLDER = /\{\{[ \t]*([A-Za-z_][A-Za-z0-9_]*)[ \t]*\}\}/g;

export function placeholders(text) {
  const names = [];
  for (const match of text.matchAll(PLACEHOLDER)) if (!names.includes(match[1])) names.push(match[1]);
  return names;
}

// Server-sent events from a fetch body: yields [event, data] pairs as they arrive.
export async function* serverSentEvents(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true }).replace(/\r\n/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (data.length) yield [name, JSON.parse(data.join("\n"))];
    }
  }
}

export function runPanel(ytext) {
  const model = h("select", { id: "run-model", "aria-label": "Model" });
  const temperature = h("input", { id: "run-temperature", type: "number", min: 0, max: 2, step: 0.1, value: 0.7, "aria-label": "Temperature" });
  const useCache = h("input", { id: "run-cache", type: "checkbox", checked: true });
  const variables = h("div", { class: "stack", id: "run-variables" });
  const runButton = h("button", { type: "submit", class: "primary", id: "run-button" }, "Run");
  const stopButton = h("button", { type: "button", id: "run-stop", hidden: true }, "Stop");
  const output = h("pre", { class: "preview", id: "run-output", dir: "auto", hidden: true });
  const meta = h("p", { class: "hint", id: "run-meta" });
  const rating = h("div", { class: "rating", id: "run-rating", hidden: true });
  const error = h("p", { class: "error", role: "alert" });
  const form = h(
    "form",
    { class: "stack", id: "run-form" },
    h("div", { class: "inline" }, model, temperature),
    h("label", { class: "check" }, useCache, "Use the semantic cache"),
    variables,
    h("div", { class: "inline" }, runButton, stopButton),
  );
  const el = h("section", { class: "panel", id: "run-panel", hidden: true }, h("h2", {}, "Run"), form, output, meta, rating, error);
  let sessionId = null;
  let controller = null;
  const values = new Map();
  let timer = null;

  function renderVariables() {
    const names = placeholders(ytext.toString());
    clear(
      variables,
      names.map((name) => {
        const input = h("textarea", { rows: 1, dir: "auto", dataset: { variable: name }, "aria-label": `Value of ${name}` });
        input.value = values.get(name) || "";
        input.addEventListener("input", () => values.set(name, input.value));
        return h("label", { class: "variable" }, h("code", {}, `{{${name}}}`), input);
      }),
    );
  }

  function showRating(run) {
    rating.hidden = false;
    clear(
      rating,
      h("span", { class: "hint" }, "Rate this answer:"),
      [1, 2, 3, 4, 5].map((stars) =>
        h("button", { type: "button", class: "star", "aria-label": `${stars} of 5`, onclick: () => rate(run.id, stars) }, "★".repeat(stars)),
      ),
    );
  }

  async function rate(runId, stars) {
    error.textContent = "";
    try {
      await api("POST", `/runs/${runId}/ratings`, { rating: stars });
      clear(rating, h("span", { id: "run-rated" }, `Rated ${stars} of 5. Thank you.`));
    } catch (err) {
      error.textContent = err.message;
    }
  }

  function finished(run) {
    const usage = run.token_usage ? ` · ${run.token_usage.total} tokens` : "";
    const latency = run.latency !== null && run.latency !== undefined ? ` · ${run.latency} ms` : "";
    const cached = run.cache && run.cache.hit ? " · from the cache" : "";
    meta.textContent = `${run.model} · ${run.status}${usage}${latency}${cached}`;
    if (run.status === "completed" || run.status === "truncated") showRating(run);
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    meta.textContent = "Running…";
    rating.hidden = true;
    output.hidden = false;
    output.textContent = "";
    const body = {
      session_id: sessionId,
      model: model.value,
      temperature: Number(temperature.value),
      variables: Object.fromEntries(placeholders(ytext.toString()).map((n) => [n, values.get(n) || ""])),
      cache: useCache.checked ? "use" : "bypass",
      stream: true,
    };
    controller = new AbortController();
    runButton.disabled = true;
    stopButton.hidden = false;
    try {
      const response = await fetch("/api/runs", {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "text/event-stream", Authorization: `Bearer ${loginToken()}` },
        body: JSON.stringify(body),
        signal: controller.signal,
      });
      if (!response.ok) {
        const data = await response.json().catch(() => ({}));
        const e = data.error || {};
        throw new ApiError(response.status, e.code || "http_error", e.message || `HTTP ${response.status}`, e.field);
      }
      for await (const [name, data] of serverSentEvents(response)) {
        if (name === "delta") output.textContent += data.text;
        else if (name === "done") finished(data.run);
        else if (name === "error") {
          error.textContent = data.message;
          meta.textContent = `failed (${data.code})`;
        }
      }
    } catch (err) {
      if (err.name === "AbortError") meta.textContent = "Stopped.";
      else {
        error.textContent = err.message;
        meta.textContent = "";
      }
    } finally {
      runButton.disabled = false;
      stopButton.hidden = true;
      controller = null;
    }
  });
  stopButton.addEventListener("click", () => controller && controller.abort());

  const observer = () => {
    clearTimeout(timer);
    timer = setTimeout(renderVariables, 300);
  };
  ytext.observe(observer);

  return {
    el,
    async setSession(id) {
      sessionId = id;
      try {
        const models = await api("GET", "/models");
        clear(model, models.items.map((m) => h("option", { value: m.name }, m.provider === m.name ? m.name : `${m.name} (${m.provider})`)));
        el.hidden = models.items.length === 0;
        renderVariables();
      } catch (err) {
        error.textContent = err.message;
      }
    },
    destroy() {
      clearTimeout(timer);
      ytext.unobserve(observer);
      if (controller) controller.abort();
    },
  };
}
