/**
 * The handlers a cluster serves: found by file name in one folder, nowhere else. A
 * request names a handler and is looked up here; it can never name a path.
 */
import { readdirSync, statSync } from "node:fs";
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

export class HandlerRegistry {
  readonly #specs = new Map<string, HandlerSpec>();

  constructor(
    files: Record<string, string>,
    configs: Record<string, HandlerConfig>,
    defaults: { timeoutMs: number; maxAttempts: number },
  ) {
    for (const [name, file] of Object.entries(files)) {
      const config = configs[name] ?? {};
      this.#specs.set(name, {
        name,
        file,
        timeoutMs: config.timeoutMs ?? defaults.timeoutMs,
        maxAttempts: config.maxAttempts ?? defaults.maxAttempts,
        isolation: config.isolation ?? "thread",
        prefer: config.prefer ?? (config.isolation === "process" ? "process" : null),
      });
    }
  }

  get(name: string): HandlerSpec | undefined {
    return this.#specs.get(name);
  }

  list(): HandlerSpec[] {
    return [...this.#specs.values()];
  }
}
