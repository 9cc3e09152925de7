/**
 * The page's files, served from the installed package: the page itself (assets/dashboard/
 * in the package, shipped by `npm pack`) and uPlot's built files from its own installed
 * package (node_modules/uplot/dist), so nothing is fetched from the internet and the user
 * builds nothing. Each file is read once, on first use, and kept (together ~80 KB).
 */
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import type { ServerResponse } from "node:http";

const PAGE_DIR = fileURLToPath(new URL("../../assets/dashboard/", import.meta.url));
const require = createRequire(import.meta.url);

/** URL path → file and content type: only these are ever served. */
const FILES: Record<string, { file: () => string; type: string }> = {
  "/": { file: () => `${PAGE_DIR}index.html`, type: "text/html; charset=utf-8" },
  "/dashboard/app.js": { file: () => `${PAGE_DIR}app.js`, type: "text/javascript; charset=utf-8" },
  "/dashboard/app.css": { file: () => `${PAGE_DIR}app.css`, type: "text/css; charset=utf-8" },
  "/dashboard/uplot.js": { file: () => require.resolve("uplot/dist/uPlot.iife.min.js"), type: "text/javascript; charset=utf-8" },
  "/dashboard/uplot.css": { file: () => require.resolve("uplot/dist/uPlot.min.css"), type: "text/css; charset=utf-8" },
};

/**
 * The page may load only its own files and talk only to this front; no other site may
 * frame it (its buttons kill nodes). uPlot sizes its elements through inline styles.
 */
const HEADERS = {
  "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
  "cache-control": "no-cache",
};

const cache = new Map<string, Promise<Buffer>>();

/** Whether `path` is one of the page's files. */
export function isAsset(path: string): boolean {
  return Object.hasOwn(FILES, path);
}

/** Answers GET/HEAD for one of the page's files; rejects when the file cannot be read. */
export async function sendAsset(res: ServerResponse, path: string, head: boolean): Promise<void> {
  const entry = FILES[path]!;
  let body = cache.get(path);
  if (!body) {
    body = readFile(entry.file());
    cache.set(path, body);
    body.catch(() => cache.delete(path));
  }
  const bytes = await body;
  if (res.headersSent || res.destroyed) return;
  res.writeHead(200, { ...HEADERS, "content-type": entry.type, "content-length": bytes.length });
  res.end(head ? undefined : bytes);
}
