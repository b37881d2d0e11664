// Builds the browser editor into server/static/ (or the directory given as the first argument).
// The output is byte-for-byte reproducible: no timestamps, no absolute paths, and index.html
// names the bundle by a hash of its content so browsers never run a stale one.
import { createHash } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const here = path.dirname(fileURLToPath(import.meta.url));
const outDir = path.resolve(process.argv[2] ?? path.join(here, "..", "server", "static"));

const result = await esbuild.build({
  absWorkingDir: here,
  entryPoints: { app: "src/main.js" },
  bundle: true,
  format: "esm",
  target: ["es2020", "chrome100", "firefox100", "safari15"],
  minify: true,
  legalComments: "none",
  charset: "utf8",
  write: false,
  outdir: "out",
  logLevel: "warning",
});

await mkdir(outDir, { recursive: true });
const hashes = {};
for (const file of result.outputFiles) {
  const name = path.basename(file.path);
  hashes[name] = createHash("sha256").update(file.contents).digest("hex").slice(0, 12);
  await writeFile(path.join(outDir, name), file.contents);
}
const page = (await readFile(path.join(here, "index.html"), "utf8"))
  .replace("__APP_JS__", `/static/app.js?v=${hashes["app.js"]}`)
  .replace("__APP_CSS__", `/static/app.css?v=${hashes["app.css"]}`);
await writeFile(path.join(outDir, "index.html"), page);
