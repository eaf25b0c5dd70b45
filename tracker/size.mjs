// Prints the built tracker's size and fails when the gzipped size is over the budget.
import { readFileSync } from "node:fs";
import { brotliCompressSync, gzipSync } from "node:zlib";

const BUDGET = 3584; // 3.5 KB gzipped, docs/tracker.md
const file = new URL("../src/cadlink/web/static/t.js", import.meta.url);
const code = readFileSync(file);
// Level 6 is what nginx and most servers use by default; -9 would flatter the figure.
const gzip = gzipSync(code, { level: 6 }).length;
const brotli = brotliCompressSync(code).length;

console.log(`t.js: ${code.length} B raw, ${gzip} B gzip, ${brotli} B brotli (budget ${BUDGET} B gzip)`);
if (gzip > BUDGET) {
  console.error(`t.js is ${gzip - BUDGET} B over its gzip budget`);
  process.exit(1);
}
