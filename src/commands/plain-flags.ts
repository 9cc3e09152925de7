/**
 * A command line of plain flags from one flag table, read without yargs. Loading yargs
 * (cliui, string-width's tables, y18n, its parser) takes ~100 ms of the primary's one
 * thread, a quarter of `crew start`'s time to its first answer on a 2-core VM (issue 13:
 * start ≤ 300 ms); a typical start line (`crew start --threads 4 --port 7070`) needs none
 * of it. Anything else goes to yargs, which gives its help, version and messages: the
 * reader only ever says "this is exactly what yargs would have read" or "ask yargs".
 *
 * Reads with node:util's parseArgs. Takes only `--kebab-flag VALUE`, `--kebab-flag=VALUE`
 * and, for boolean flags, a bare `--kebab-flag`. As in yargs, a value flag given twice
 * stays an array (for gatherOptions to refuse with the same message) and a boolean flag
 * given twice is simply true.
 * test/plain-flags.test.ts checks against yargs' own parse over generated command lines.
 */
import { parseArgs, type ParseArgsConfig } from "node:util";
import { type FlagTable, kebab } from "./flags.js";

/**
 * `args` (the words after the command name) as yargs would give them to the command's
 * handler — camelCase keys, values as typed (booleans as booleans) — or null when they
 * need yargs: help, version, a positional, a short or unknown flag, a camelCase or
 * negated (`--no-watch`) spelling, a value flag without a value, or a value for a boolean
 * flag. Never throws.
 */
export function readPlainFlags(args: readonly string[], table: FlagTable): Record<string, unknown> | null {
  const options: NonNullable<ParseArgsConfig["options"]> = {};
  const keyOf = new Map<string, string>();
  for (const [key, spec] of Object.entries(table)) {
    options[kebab(key)] = { type: spec.kind === "boolean" ? "boolean" : "string", multiple: true };
    keyOf.set(kebab(key), key);
  }
  // parseArgs accepts `-abc` short groups and lone `-`; none of those is a flag of ours.
  if (args.some((arg) => !arg.startsWith("--") && arg.startsWith("-"))) return null;
  let parsed;
  try {
    parsed = parseArgs({ args: [...args], options, strict: true, allowPositionals: false });
  } catch {
    return null;
  }
  const out: Record<string, unknown> = {};
  for (const [flag, given] of Object.entries(parsed.values)) {
    const values = given as Array<string | boolean>;
    out[keyOf.get(flag)!] = values.length === 1 || typeof values[0] === "boolean" ? values.at(-1) : values;
  }
  return out;
}
