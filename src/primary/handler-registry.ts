/**
 * The handlers a cluster serves: found by file name in one folder, nowhere else. A
 * request names a handler and is looked up here; it can never name a path.
 */
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { extname, join } from "node:path";
import { HandlerLoadError, InvalidOptionError } from "../errors.js";
import type { HandlerConfig, IsolationMode, NodeKind } from "../nodes/messages.js";
import { HANDLER_NAME } from "../protocol/frames.js";

export const HANDLER_EXTENSIONS = [".js", ".mjs", ".ts", ".mts"];

/** A handler's config with the cluster's defaults filled in. */
export interface HandlerSpec {
  readonly name: string;
  readonly file: string;
  readonly timeoutMs: number;
  readonly maxAttempts: number;
  readonly isolation: IsolationMode;
  readonly prefer: NodeKind | null;
  /** The handler file's content hash (see HandlerSet.versions): shown in reply meta. */
  readonly version: string;
  /** config.hedgeAfterMs, or null: the handler is not hedged (see hedger.ts). */
  readonly hedgeAfterMs: number | "p95" | null;
}

/**
 * One reading of the handlers folder: what a node is started with. `versions` holds the
 * first 8 hex digits of each file's SHA-256, so a reply can say which code answered it
 * (code in a subfolder that a handler imports is not part of its version).
 */
export interface HandlerSet {
  readonly files: Readonly<Record<string, string>>;
  readonly versions: Readonly<Record<string, string>>;
  /** name → the JavaScript the primary compiled a TypeScript handler into (transpile.ts). */
  readonly compiled?: Readonly<Record<string, string>>;
}

/** Reads the handlers folder: names, files and versions. Throws like findHandlers. */
export function readHandlerSet(dir: string): HandlerSet {
  const files = findHandlers(dir);
  const versions: Record<string, string> = {};
  for (const [name, file] of Object.entries(files)) {
    try {
      versions[name] = createHash("sha256").update(readFileSync(file)).digest("hex").slice(0, 8);
    } catch (err) {
      throw new HandlerLoadError(`${file}: cannot be read: ${(err as Error).message}`);
    }
  }
  return { files, versions };
}

/** Lists handler files: name → absolute path. Names that are not plain identifiers are refused. */
export function findHandlers(dir: string): Record<string, string> {
  let entries: string[];
  try {
    if (!statSync(dir).isDirectory()) throw new Error("not a folder");
    entries = readdirSync(dir).sort();
  } catch (err) {
    throw new InvalidOptionError(`handlers folder ${dir} cannot be read: ${(err as Error).message}`);
  }
  const found: Record<string, string> = {};
  for (const entry of entries) {
    const ext = extname(entry);
    if (entry.startsWith(".")) continue;
    if (!HANDLER_EXTENSIONS.includes(ext) || entry.endsWith(".d.ts") || entry.endsWith(".d.mts")) continue;
    const file = join(dir, entry);
    if (!statSync(file).isFile()) continue;
    const name = entry.slice(0, -ext.length);
    if (!HANDLER_NAME.test(name)) {
      throw new HandlerLoadError(`${file}: "${name}" is not a handler name (letters, digits, "_" and "-")`);
    }
    if (found[name]) throw new HandlerLoadError(`${file}: handler "${name}" is also defined by ${found[name]}`);
    found[name] = file;
  }
  if (Object.keys(found).length === 0) {
    throw new InvalidOptionError(`handlers folder ${dir} has no handler modules (${HANDLER_EXTENSIONS.join(", ")})`);
  }
  return found;
}

/**
 * The handlers offered to requests. A reload adds and replaces specs as soon as a node
 * runs the new set (`offer`), and withdraws deleted ones once no node takes work for
 * them any more (`withdraw`).
 */
export class HandlerRegistry {
  readonly #specs = new Map<string, HandlerSpec>();
  readonly #defaults: { timeoutMs: number; maxAttempts: number };

  constructor(set: HandlerSet, configs: Record<string, HandlerConfig>, defaults: { timeoutMs: number; maxAttempts: number }) {
    this.#defaults = { timeoutMs: defaults.timeoutMs, maxAttempts: defaults.maxAttempts };
    this.offer(set, configs);
  }

  /** Offers every handler of `set` with its reported config (new names, and new specs for old ones). */
  offer(set: HandlerSet, configs: Record<string, HandlerConfig>): void {
    const defaults = this.#defaults;
    for (const [name, file] of Object.entries(set.files)) {
      const config = configs[name] ?? {};
      this.#specs.set(name, {
        name,
        file,
        timeoutMs: config.timeoutMs ?? defaults.timeoutMs,
        maxAttempts: config.maxAttempts ?? defaults.maxAttempts,
        isolation: config.isolation ?? "thread",
        prefer: config.prefer ?? (config.isolation === "process" ? "process" : null),
        version: set.versions[name] ?? "",
        hedgeAfterMs: config.hedgeAfterMs ?? null,
      });
    }
  }

  /** Stops offering the handlers not in `keep`; returns the names withdrawn. */
  withdraw(keep: ReadonlySet<string>): string[] {
    const gone = [...this.#specs.keys()].filter((name) => !keep.has(name));
    for (const name of gone) this.#specs.delete(name);
    return gone;
  }

  get(name: string): HandlerSpec | undefined {
    return this.#specs.get(name);
  }

  list(): HandlerSpec[] {
    return [...this.#specs.values()];
  }
}
