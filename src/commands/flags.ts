/**
 * The CLI's flag tables. Each entry is one flag, keyed by its option name in camelCase
 * (the ClusterOptions key for cluster options); the flag (`--max-queue`), its
 * environment variable (`CREW_MAX_QUEUE`), its config-file key (`maxQueue`) and its
 * yargs declaration are all derived from it (see config-sources.ts).
 *
 * To add a `crew start` option: one line in START_FLAGS here, one in resolveOptions
 * (src/options.ts), which checks the value and holds the default.
 */
import type { Argv } from "yargs";
import { UsageError } from "./usage-error.js";
import { BALANCER_NAMES } from "../primary/balancers/balancer.js";
import { LOG_LEVELS } from "../options.js";
import { DEFAULT_HOST, DEFAULT_HTTP_PORT, DEFAULT_PORT } from "../protocol/address.js";

export interface FlagSpec {
  /** How the text of a flag or environment variable is read; a config file gives JSON values. */
  kind: "number" | "string" | "boolean" | "range";
  describe: string;
  /**
   * Where the value goes: createCluster's options ("cluster", the default), cluster.listen()'s
   * ("listen"), or the command itself ("cli").
   */
  to?: "cluster" | "listen" | "cli";
  /** The value when no source gives one, for flags resolveOptions does not know (listen, cli). */
  fallback?: string | number | boolean;
  /** The default as --help shows it; for cluster options it is read from resolveOptions. */
  defaultText?: string;
  /** Allowed values, shown by --help (resolveOptions checks them). */
  choices?: readonly string[];
  /** A path: a relative one in a config file resolves against that file's folder. */
  path?: true;
  /** Not settable from a config file (the flag that names the file). */
  notInFile?: true;
}

export type FlagTable = Record<string, FlagSpec>;

/**
 * yargs' parser settings for every command: flags from the tables stay text until
 * config-sources.ts reads them, so a bad one is quoted as typed; options with a yargs
 * type still get it. plain-flags.ts reads the same way without yargs.
 */
export const PARSER_CONFIGURATION = { "parse-numbers": false, "parse-positional-numbers": false } as const;

/** The cluster's address: every command takes these, with the same defaults. */
export const ADDRESS_FLAGS = {
  host: { kind: "string", to: "listen", fallback: DEFAULT_HOST, describe: "The cluster's address (crew start binds it; 0.0.0.0 exposes the cluster)" },
  port: { kind: "number", to: "listen", fallback: DEFAULT_PORT, describe: "The cluster's TCP (NDJSON) port" },
  httpPort: { kind: "number", to: "listen", fallback: DEFAULT_HTTP_PORT, describe: "The cluster's HTTP port" },
} satisfies FlagTable;

/** Where every command's configuration may come from besides its flags. */
export const CONFIG_FLAGS = {
  config: { kind: "string", to: "cli", notInFile: true, defaultText: "./crew.config.json when present", describe: "JSON file of options (camelCase keys); flags win over CREW_* variables, which win over the file" },
} satisfies FlagTable;

/** The flags every client command (run, status, bench) takes from the table. */
export const CLIENT_FLAGS = { ...ADDRESS_FLAGS, ...CONFIG_FLAGS } satisfies FlagTable;

export const START_FLAGS = {
  handlers: { kind: "string", path: true, defaultText: "./workers", describe: "Folder of handler modules (.js, .mjs, .ts)" },
  threads: { kind: "range", defaultText: "one per core, or 0 when --processes is given", describe: "Thread nodes: N, or MIN..MAX to grow and shrink with the load" },
  processes: { kind: "range", describe: "Child-process nodes: N, or MIN..MAX" },
  scaleUpMs: { kind: "number", describe: "Elastic nodes: add one while a request has waited this long for a node (ms)" },
  idleTimeoutMs: { kind: "number", describe: "Elastic nodes: stop a node idle this long, down to MIN (ms)" },
  ...ADDRESS_FLAGS,
  balancer: { kind: "string", choices: BALANCER_NAMES, describe: "How a node is picked" },
  weights: { kind: "string", describe: "Weights for --balancer weighted: by kind (t=1,p=3) or node id (t0=2)" },
  seed: { kind: "number", describe: "Seed for the random and p2c balancers" },
  maxAttempts: { kind: "number", describe: "Attempts per request before E_CRASHED" },
  timeoutMs: { kind: "number", describe: "Default deadline per request" },
  maxQueue: { kind: "number", describe: "Requests waiting for a node before E_OVERLOADED" },
  maxFrameBytes: { kind: "number", describe: "Largest TCP frame or HTTP body" },
  maxPendingBytes: { kind: "number", describe: "Bytes of requests accepted and unanswered before E_OVERLOADED; also the replies clients leave unread, all connections together, before the one holding the most is closed (once backed up for 1 s; at once past twice this)" },
  maxCheckpointBytes: { kind: "number", describe: "Largest checkpoint state (as JSON)" },
  maxResultBytes: { kind: "number", describe: "Largest handler result (as JSON); a larger one answers E_HANDLER" },
  threadHost: { kind: "string", choices: ["process", "primary"], describe: "Where thread nodes run: one host process (no handler's memory use can abort the primary) or the primary itself (faster)" },
  nodeStartTimeoutMs: { kind: "number", describe: "How long a node may take to load the handlers before it is killed" },
  frozenNodeMs: { kind: "number", describe: "How long a node process may stay stopped (SIGSTOP) before it is killed and its requests retried; 0: never" },
  nodeMemoryMb: { kind: "number", describe: "Heap cap per node; a node over it is replaced" },
  nodeConcurrency: { kind: "number", describe: "Requests running at once on one node" },
  nodePipeline: { kind: "number", describe: "Short requests a busy node may hold ahead (0: off)" },
  nodeLookahead: { kind: "number", describe: "Requests of any length a busy thread node may hold ahead, taken back when another node frees (0: off, 1)" },
  maxConnectionInflight: { kind: "number", describe: "Requests in flight per connection before reading pauses" },
  priorityAgingMs: { kind: "number", describe: "Waiting worth one priority step, against starvation (0: strict priority)" },
  restartBackoffMs: { kind: "number", describe: "First restart delay of a node that dies before answering anything" },
  restartBackoffMaxMs: { kind: "number", describe: "Cap of that delay, which doubles per death in a row" },
  drainTimeoutMs: { kind: "number", describe: "How long SIGINT/SIGTERM wait for in-flight work" },
  killGraceMs: { kind: "number", describe: "How long a handler may run past its deadline before its node is killed" },
  adminToken: { kind: "string", to: "listen", describe: "Allows the admin endpoints from other hosts than loopback (Authorization: Bearer TOKEN)" },
  maxConnections: { kind: "number", describe: "Open connections per front (TCP, HTTP); one more is refused E_OVERLOADED" },
  idleConnectionMs: { kind: "number", describe: "Close a connection idle (nothing in flight, nothing sent) this long (0: never)" },
  maxUnsentReplyBytes: { kind: "number", describe: "Unread reply bytes per connection before its waiting requests are held" },
  allowedHosts: { kind: "string", describe: "Host names the HTTP front answers besides loopback, comma-separated (*: any)" },
  journal: { kind: "string", describe: "SQLite file keeping keyed requests, checkpoints and replies across restarts (needs better-sqlite3)" },
  journalSync: { kind: "string", choices: ["normal", "full"], describe: "full: an fsync per commit, so an OS crash loses nothing either" },
  resultTtlMs: { kind: "number", describe: "How long a keyed request's reply is kept for replay" },
  maxKeptReplies: { kind: "number", describe: "Idempotency keys held (open or kept) before a new key is refused E_OVERLOADED" },
  watch: { kind: "boolean", describe: "Reload the handlers (no downtime) when a file in their folder changes" },
  redis: { kind: "string", describe: "Redis URL (redis://HOST:PORT[/DB]): join the hosts sharing it (several hosts, docs/redis.md)" },
  cluster: { kind: "string", describe: "Cluster name in Redis: hosts with the same Redis and name share work" },
  hostId: { kind: "string", defaultText: "hostname-pid", describe: "This host's id in the cluster: one live host per id (a second one is refused)" },
  hostTimeoutMs: { kind: "number", describe: "A host silent this long is dead: its requests resume on other hosts" },
  logLevel: { kind: "string", choices: LOG_LEVELS, describe: "Log level" },
  pretty: { kind: "boolean", to: "cli", fallback: false, describe: "Human-readable logs instead of JSON lines" },
  ...CONFIG_FLAGS,
  printConfig: { kind: "boolean", to: "cli", fallback: false, notInFile: true, describe: "Print the options as flags, CREW_* variables and the config file resolve them, then exit" },
} satisfies FlagTable;

/** `maxQueue` → `max-queue`. */
export function kebab(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/** `maxQueue` → `CREW_MAX_QUEUE`. */
export function envName(key: string): string {
  return `CREW_${kebab(key).replace(/-/g, "_").toUpperCase()}`;
}

/**
 * Declares a table's flags to yargs. Every value flag is read as text, so that the
 * message for a bad one quotes what was typed (`--threads "abc"`); config-sources.ts
 * converts it. No yargs defaults: an absent flag must stay absent, so that a CREW_*
 * variable or the config file can supply it. `defaults` gives --help's default column.
 */
export function declareFlags<T>(y: Argv<T>, table: FlagTable, defaults: Record<string, unknown> = {}): Argv<T> {
  for (const [key, spec] of Object.entries(table)) {
    const shown = spec.defaultText ?? spec.fallback ?? defaults[key];
    y.option(kebab(key), {
      // No yargs type for value flags: the text stays as typed (cli.ts turns number parsing off).
      ...(spec.kind === "boolean" ? { type: "boolean" } : { requiresArg: true }),
      describe: `${spec.describe}${spec.choices ? ` [${spec.choices.join(" | ")}]` : ""} (env ${envName(key)})`,
      ...(typeof shown === "object" || shown === undefined ? {} : { defaultDescription: String(shown) }),
    });
  }
  return y;
}

/**
 * An option of one command (not in a table) that takes one value: a flag given twice is
 * an error, as for the table's flags; `convert` checks the text as typed.
 */
function singleValued<T>(flag: string, describe: string, fallback: T | undefined, convert: (value: unknown) => T) {
  return {
    requiresArg: true,
    describe,
    ...(fallback === undefined ? {} : { default: fallback }),
    coerce: (value: unknown): T => {
      refuseRepeated(flag, value);
      return convert(value);
    },
  };
}

/** A number option of one command: a bad value is quoted (`--priority must be a number, got "high"`). */
export function numberOption(flag: string, describe: string, fallback?: number) {
  return singleValued(flag, describe, fallback, (value): number => {
    if (typeof value === "number") return value;
    const n = Number(value);
    if (typeof value !== "string" || value.trim() === "" || !Number.isFinite(n)) throw new UsageError(`--${flag} must be a number, got ${JSON.stringify(value)}`);
    return n;
  });
}

/** A string option of one command. */
export function stringOption(flag: string, describe: string, fallback?: string) {
  return { type: "string" as const, ...singleValued(flag, describe, fallback, String) };
}

/** yargs collects a flag given twice into an array: an error here, naming the values. */
export function refuseRepeated(flag: string, value: unknown): void {
  if (Array.isArray(value)) throw new UsageError(`--${flag} was given ${value.length} times (${value.map((v) => JSON.stringify(v)).join(", ")}): give it once`);
}
