/**
 * Imports the handler modules inside a node. The primary never imports user code: a
 * module that calls process.exit or throws on import can only take a node down, and
 * the first node's report is how `crew start` learns each handler's config.
 */
import { readFile } from "node:fs/promises";
import { pathToFileURL } from "node:url";
import type { HandlerConfig } from "../nodes/messages.js";
import { MAX_TIMEOUT_MS } from "../protocol/frames.js";
import type { Handler } from "../types.js";
import { describeValue } from "../describe-value.js";

export interface LoadedHandler {
  fn: Handler;
  config: HandlerConfig;
}

export class HandlerModuleError extends Error {
  constructor(
    readonly file: string,
    message: string,
  ) {
    super(message);
  }
}

const TS_FILE = /\.[cm]?ts$/;

/** `compiled`: the JavaScript the primary made of a TypeScript handler, imported instead of it. */
export async function loadHandler(file: string, compiled?: string): Promise<LoadedHandler> {
  let mod: Record<string, unknown>;
  try {
    mod = await importModule(file, compiled);
  } catch (err) {
    throw new HandlerModuleError(file, `failed to import${where(file, err) || (await syntaxErrorAt(file, err))}: ${err instanceof Error ? err.message : String(err)}`);
  }
  // A .ts file outside a "type": "module" package is compiled to CommonJS by tsx, which
  // puts the module's exports under `default`.
  const inner = isObject(mod.default) ? (mod.default as Record<string, unknown>) : undefined;
  const fn = typeof mod.default === "function" ? mod.default : inner?.default;
  if (typeof fn !== "function") {
    throw new HandlerModuleError(file, "has no default export function: export default function (payload, ctx) { … }");
  }
  try {
    return { fn: fn as Handler, config: checkConfig(file, mod.config ?? inner?.config ?? {}) };
  } catch (err) {
    // A config whose reading throws (a getter, a Proxy) is refused like any bad config: naming the file.
    if (err instanceof HandlerModuleError) throw err;
    throw new HandlerModuleError(file, `config cannot be read: ${err instanceof Error ? err.message : String(err)}`);
  }
}

async function importModule(file: string, compiled?: string): Promise<Record<string, unknown>> {
  if (compiled) {
    // Its inline source map turns stack traces back into the .ts file's lines.
    process.setSourceMapsEnabled(true);
    return (await import(pathToFileURL(compiled).href)) as Record<string, unknown>;
  }
  const url = pathToFileURL(file).href;
  if (!TS_FILE.test(file)) return (await import(url)) as Record<string, unknown>;
  // TypeScript handlers run without a build step. tsx is loaded only when the primary
  // could not compile them (a handlers folder it cannot write to).
  const { tsImport } = await import("tsx/esm/api");
  return (await tsImport(url, import.meta.url)) as Record<string, unknown>;
}

/** " at <file>:<line>:<col>": the first stack frame in the handler's own file, if any. */
function where(file: string, err: unknown): string {
  const stack = err instanceof Error ? (err.stack ?? "") : "";
  const at = stack.split("\n").find((line) => line.includes(file) || line.includes(pathToFileURL(file).href));
  const loc = at && /(\d+):(\d+)\)?\s*$/.exec(at);
  return loc ? ` at ${file}:${loc[1]}:${loc[2]}` : "";
}

/**
 * " at <file>:<line>:<col>" of a JavaScript module's syntax error. Node.js 20 prints where
 * one is only when it is uncaught: an import's SyntaxError carries neither line nor column.
 * esbuild (crew's TypeScript compiler, loaded on this failure only) parses the file again
 * to find it; nothing when it finds none (the two parsers disagree on some strict-mode errors).
 */
async function syntaxErrorAt(file: string, err: unknown): Promise<string> {
  if (!(err instanceof SyntaxError) || TS_FILE.test(file)) return "";
  try {
    const [{ transform }, source] = await Promise.all([import("esbuild"), readFile(file, "utf8")]);
    await transform(source, { loader: "js", format: "esm", sourcefile: file });
  } catch (parsed) {
    const at = (parsed as { errors?: Array<{ location: { line: number; column: number } | null }> }).errors?.[0]?.location;
    if (at) return ` at ${file}:${at.line}:${at.column + 1}`;
  }
  return "";
}

function checkConfig(file: string, config: unknown): HandlerConfig {
  if (!isObject(config)) throw new HandlerModuleError(file, "config must be an object");
  const c = config as Record<string, unknown>;
  const wrong = (field: string, expected: string) =>
    new HandlerModuleError(file, `config.${field} must be ${expected}, got ${describeValue(c[field])}`);
  if (c.timeoutMs !== undefined && !(Number.isInteger(c.timeoutMs) && (c.timeoutMs as number) > 0 && (c.timeoutMs as number) <= MAX_TIMEOUT_MS)) {
    throw wrong("timeoutMs", `an integer from 1 to ${MAX_TIMEOUT_MS}`);
  }
  if (c.maxAttempts !== undefined && !(Number.isInteger(c.maxAttempts) && (c.maxAttempts as number) >= 1 && (c.maxAttempts as number) <= 100)) {
    throw wrong("maxAttempts", "an integer from 1 to 100");
  }
  if (c.isolation !== undefined && c.isolation !== "thread" && c.isolation !== "process") {
    throw wrong("isolation", '"thread" or "process"');
  }
  if (c.prefer !== undefined && c.prefer !== "thread" && c.prefer !== "process") {
    throw wrong("prefer", '"thread" or "process"');
  }
  const hedge = c.hedgeAfterMs;
  if (hedge !== undefined && hedge !== "p95" && !(Number.isInteger(hedge) && (hedge as number) >= 1 && (hedge as number) <= MAX_TIMEOUT_MS)) {
    throw wrong("hedgeAfterMs", `"p95" or an integer from 1 to ${MAX_TIMEOUT_MS}`);
  }
  const out: HandlerConfig = {};
  if (hedge !== undefined) out.hedgeAfterMs = hedge as HandlerConfig["hedgeAfterMs"];
  if (c.timeoutMs !== undefined) out.timeoutMs = c.timeoutMs as number;
  if (c.maxAttempts !== undefined) out.maxAttempts = c.maxAttempts as number;
  if (c.isolation !== undefined) out.isolation = c.isolation as HandlerConfig["isolation"];
  if (c.prefer !== undefined) out.prefer = c.prefer as HandlerConfig["prefer"];
  return out;
}

function isObject(v: unknown): v is object {
  return typeof v === "object" && v !== null;
}
