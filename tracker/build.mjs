// Builds the tracker into one minified IIFE: src/cadlink/web/static/t.js (served at GET /t.js).
import { build } from "esbuild";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));

await build({
  absWorkingDir: root,
  entryPoints: ["tracker/src/index.js"],
  outfile: "src/cadlink/web/static/t.js",
  bundle: true,
  minify: true,
  format: "iife",
  // Browsers of the last ~4 years; optional chaining and spread stay native (smaller).
  target: "es2020",
  legalComments: "none",
  logLevel: "warning",
});
