// Prints the dashboard's asset sizes; fails when its JavaScript is over the gzip budget.
import { readFileSync, readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

export const BUDGET = 150 * 1024; // 150 KB gzipped, issue 5 / docs/dashboard.md

function gz(files) {
  let raw = 0;
  let gzip = 0;
  for (const f of files) {
    const code = readFileSync(f);
    raw += code.length;
    // Level 6, as nginx and the server's in-memory gzip use.
    gzip += gzipSync(code, { level: 6 }).length;
  }
  return { raw, gzip };
}

const kb = (n) => (n / 1024).toFixed(1) + " KB";

export function checkSize(jsFiles, cssFiles) {
  const js = gz(jsFiles);
  const css = gz(cssFiles);
  console.log(
    `dashboard: JS ${kb(js.raw)} raw, ${kb(js.gzip)} gzip (budget ${kb(BUDGET)}); ` +
      `CSS ${kb(css.raw)} raw, ${kb(css.gzip)} gzip`,
  );
  if (js.gzip > BUDGET) {
    console.error(`dashboard JS is ${kb(js.gzip - BUDGET)} over its gzip budget`);
    process.exit(1);
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const dir = fileURLToPath(new URL("../src/cadlink/web/static/app/assets/", import.meta.url));
  const names = readdirSync(dir);
  checkSize(
    names.filter((n) => n.endsWith(".js")).map((n) => dir + n),
    names.filter((n) => n.endsWith(".css")).map((n) => dir + n),
  );
}
