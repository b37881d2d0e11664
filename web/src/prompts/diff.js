// A version diff as the API gives it: unified diffs per text, variable and model-config changes.
import { h } from "../dom.js";

function unified(text) {
  return h(
    "pre",
    { class: "diff", dir: "auto" },
    text.split("\n").map((line) => {
      const kind = line.startsWith("+") && !line.startsWith("+++") ? "add"
        : line.startsWith("-") && !line.startsWith("---") ? "del"
        : line.startsWith("@@") ? "hunk" : "same";
      return h("span", { class: `diff-${kind}` }, `${line}\n`);
    }),
  );
}

export function diffView(diff) {
  const changedTexts = diff.texts.filter((t) => t.changed);
  return h(
    "div",
    { class: "diff-view", dataset: { from: String(diff.from_version), to: String(diff.to_version) } },
    h("p", { class: "hint" }, `v${diff.from_version} → v${diff.to_version}`),
    changedTexts.length
      ? changedTexts.map((t) => h("div", {}, h("strong", {}, t.name), unified(t.diff)))
      : h("p", { class: "hint" }, "The texts are the same."),
    diff.variables.length
      ? h("ul", { class: "changes" }, diff.variables.map((v) => h("li", {}, `${v.change} variable ${v.name}`)))
      : null,
    (diff.model_config || []).length
      ? h("ul", { class: "changes" }, diff.model_config.map((c) => h("li", {}, `${c.change} ${c.key}: ${JSON.stringify(c.before)} → ${JSON.stringify(c.after)}`)))
      : null,
  );
}
