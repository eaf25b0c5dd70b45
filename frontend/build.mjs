// Builds the dashboard (frontend/src) into src/cadlink/web/static/app/: index.html plus
// content-hashed assets/*.js|css, served by src/cadlink/web/routes_dashboard.py. Then checks
// the JavaScript against its gzip budget (frontend/size.mjs).
import { build } from "esbuild";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { basename } from "node:path";
import { fileURLToPath } from "node:url";
import { checkSize } from "./size.mjs";

const root = fileURLToPath(new URL("..", import.meta.url));
const out = "src/cadlink/web/static/app";

rmSync(root + out, { recursive: true, force: true });
mkdirSync(root + out + "/assets", { recursive: true });

const result = await build({
  absWorkingDir: root,
  entryPoints: { app: "frontend/src/main.jsx" },
  outdir: out + "/assets",
  entryNames: "[name]-[hash]",
  assetNames: "[name]-[hash]",
  bundle: true,
  minify: true,
  format: "esm",
  // Browsers of the last ~4 years: native optional chaining, classes and async (smaller).
  target: "es2020",
  jsx: "automatic",
  jsxImportSource: "preact",
  legalComments: "none",
  metafile: true,
  logLevel: "warning",
  define: { "process.env.NODE_ENV": '"production"' },
});

const outputs = Object.keys(result.metafile.outputs).map((p) => basename(p));
const js = outputs.filter((n) => n.endsWith(".js"));
const css = outputs.filter((n) => n.endsWith(".css"));
const template = readFileSync(root + "frontend/index.html", "utf8");
const tags =
  css.map((n) => `<link rel="stylesheet" href="/assets/${n}">`).join("") +
  js.map((n) => `<script type="module" src="/assets/${n}"></script>`).join("");
writeFileSync(root + out + "/index.html", template.replace("<!--assets-->", tags));

checkSize(js.map((n) => root + out + "/assets/" + n), css.map((n) => root + out + "/assets/" + n));
