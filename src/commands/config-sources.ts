/**
 * Where a command's options come from, in order of precedence: its flags, then CREW_*
 * environment variables, then a JSON config file (`--config FILE`, CREW_CONFIG, or
 * ./crew.config.json when present), then the flag table's fallbacks. Only the reading
 * happens here; resolveOptions checks the values, and relabel() makes its messages name
 * the flag, variable or file the bad value came from.
 */
import { existsSync, readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { InvalidOptionError } from "../errors.js";
import { UsageError } from "./usage-error.js";
import { checkListenAddress } from "../options.js";
import { nearest } from "../suggest.js";
import { CLIENT_FLAGS, envName, type FlagSpec, type FlagTable, kebab, refuseRepeated, START_FLAGS } from "./flags.js";

export const DEFAULT_CONFIG_FILE = "crew.config.json";

export interface Gathered {
  /** Option values by camelCase key; absent when no source gave one and there is no fallback. */
  values: Record<string, unknown>;
  /** For each key some source gave: `--port`, `CREW_PORT` or `crew.config.json: port`. */
  from: Record<string, string>;
  /** The config file read, if any. */
  file: string | null;
}

/**
 * Merges the sources for the keys of `table`. `argv` is yargs' parse (flags as text).
 * @throws UsageError for a flag given twice, a value that is not of its kind
 *   (naming the flag or variable and quoting the text), an unreadable or non-object config
 *   file, or a config key no command knows (suggesting the near one).
 */
export function gatherOptions(argv: Record<string, unknown>, table: FlagTable, env: NodeJS.ProcessEnv = process.env): Gathered {
  const values: Record<string, unknown> = {};
  const from: Record<string, string> = {};
  const flagConfig = flagValue(argv, "config");
  const configPath = typeof flagConfig === "string" ? flagConfig : env[envName("config")];
  const file = configPath ?? (existsSync(DEFAULT_CONFIG_FILE) ? DEFAULT_CONFIG_FILE : null);
  if (file !== null) {
    for (const [key, value] of Object.entries(readConfigFile(file))) {
      if (!(key in table)) continue;
      values[key] = table[key]!.path && typeof value === "string" && !value.startsWith("file:") ? resolve(dirname(resolve(file)), value) : value;
      from[key] = `${file}: ${key}`;
    }
  }
  for (const [key, spec] of Object.entries(table)) {
    const name = envName(key);
    const text = env[name];
    if (text === undefined) continue;
    values[key] = parseText(text, spec, name);
    from[key] = name;
  }
  for (const [key, spec] of Object.entries(table)) {
    const given = flagValue(argv, key);
    if (given === undefined) continue;
    values[key] = typeof given === "string" ? parseText(given, spec, `--${kebab(key)}`) : given;
    from[key] = `--${kebab(key)}`;
  }
  for (const [key, spec] of Object.entries(table)) {
    if (!(key in values) && spec.fallback !== undefined) values[key] = spec.fallback;
  }
  return { values, from, file };
}

/** A flag's value from yargs' parse; a flag given twice is an error, not an array. */
function flagValue(argv: Record<string, unknown>, key: string): unknown {
  const value = argv[key];
  refuseRepeated(kebab(key), value);
  return value;
}

function parseText(text: string, spec: FlagSpec, label: string): unknown {
  if (spec.kind === "string") {
    if (text === "") throw new UsageError(`${label} needs a value`);
    return text;
  }
  if (spec.kind === "boolean") {
    if (/^(1|true|yes|on)$/i.test(text)) return true;
    if (/^(0|false|no|off|)$/i.test(text)) return false;
    throw new UsageError(`${label} must be true or false, got ${JSON.stringify(text)}`);
  }
  // A node count may be a range, "2..8" (resolveOptions checks it); anything else is a number.
  if (spec.kind === "range" && text.includes("..")) return text;
  const n = Number(text);
  if (text.trim() === "" || !Number.isFinite(n)) throw new UsageError(`${label} must be a number, got ${JSON.stringify(text)}`);
  return n;
}

/** The config file's object; every key must be one of `crew start`'s options. */
function readConfigFile(file: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, "utf8"));
  } catch (err) {
    throw new UsageError(`config file ${file} cannot be read: ${(err as Error).message}`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new UsageError(`config file ${file} must hold a JSON object of options, like {"threads": 4}`);
  }
  const known = Object.keys(START_FLAGS).filter((k) => !(START_FLAGS as FlagTable)[k]!.notInFile);
  for (const key of Object.keys(parsed)) {
    if (known.includes(key)) continue;
    const near = nearest(key, known);
    throw new UsageError(`${file}: unknown option ${JSON.stringify(key)}${near ? ` (did you mean ${near}?)` : ""}`);
  }
  return parsed as Record<string, unknown>;
}

/**
 * An InvalidOptionError from resolveOptions names the option by its key (`nodeMemoryMb
 * must be …`); this names the source instead: `--node-memory-mb must be …`,
 * `CREW_NODE_MEMORY_MB must be …` or `crew.config.json: nodeMemoryMb must be …`.
 */
export function relabel(err: unknown, from: Record<string, string>): unknown {
  if (!(err instanceof InvalidOptionError)) return err;
  // A rule on two options names both: "threads and processes must not both be 0".
  const [whole, key, other] = /^([A-Za-z]+)(?: and ([A-Za-z]+))?/.exec(err.message) ?? [];
  if (key === undefined || from[key] === undefined) return err;
  const second = other === undefined ? "" : ` and ${from[other] ?? other}`;
  return new UsageError(`${from[key]}${second}${err.message.slice(whole!.length)}`, { cause: err });
}

/** The values of one destination: createCluster's options, listen()'s, or the command's own. */
export function pick(values: Record<string, unknown>, table: FlagTable, to: "cluster" | "listen" | "cli"): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(values)) if ((table[key]!.to ?? "cluster") === to) out[key] = value;
  return out;
}

/**
 * The cluster address a client command (run, status, bench) talks to, from its flags,
 * CREW_HOST / CREW_PORT / CREW_HTTP_PORT and the config file, checked like crew start's.
 */
export function clusterAddress(argv: Record<string, unknown>): { host: string; port: number; httpPort: number } {
  const gathered = gatherOptions(argv, CLIENT_FLAGS);
  try {
    const address = checkListenAddress(gathered.values, false);
    return { ...address, httpPort: address.httpPort! };
  } catch (err) {
    throw relabel(err, gathered.from);
  }
}
