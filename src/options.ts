/**
 * Cluster options: one interface, one table of defaults, checked once at the edge.
 * `createCluster` and the CLI both go through `resolveOptions`, so a bad value gets the
 * same message from either, naming the option; nothing downstream sees `undefined`.
 */
import { availableParallelism, hostname } from "node:os";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { Logger } from "pino";
import { InvalidOptionError } from "./errors.js";
import { describeValue } from "./describe-value.js";
import { BALANCER_NAMES, type BalancerName } from "./primary/balancers/balancer.js";
import { parseWeights } from "./primary/balancers/index.js";
import { DEFAULT_HOST, DEFAULT_PORT } from "./protocol/address.js";
import { MAX_TIMEOUT_MS } from "./protocol/frames.js";
import { nearest } from "./suggest.js";
import { int } from "./validate.js";

export interface ClusterOptions {
  /**
   * Folder of handler modules: a path (a relative one resolves against process.cwd(),
   * not against the calling module), a `file:` URL string, or a URL object
   * (`new URL("./workers/", import.meta.url)` for a folder beside your module). Default "workers".
   */
  handlers?: string | URL;
  /** Thread nodes. Default: one per core when `processes` is not given, else 0. */
  threads?: number | string;
  /** Child-process nodes. Default 0. */
  processes?: number | string;
  /**
   * Elastic nodes: with threads or processes given as "MIN..MAX", a node is added (up to
   * MAX) while a request has waited longer than this for a node, in ms. Default 100.
   */
  scaleUpMs?: number;
  /** Elastic nodes: a node idle this long is stopped, down to MIN, in ms. Default 30000. */
  idleTimeoutMs?: number;
  balancer?: BalancerName;
  /** For the weighted balancer: "t=1,p=3" or { t0: 2 }. */
  weights?: string | Record<string, number>;
  /** Seeds the random and p2c balancers, for reproducible runs. */
  seed?: number;
  /** Attempts per request before E_CRASHED. Default 3. */
  maxAttempts?: number;
  /** Default deadline per request. Default 60000. */
  timeoutMs?: number;
  /** Requests waiting for a node before E_OVERLOADED. Default 10000. */
  maxQueue?: number;
  /** Largest TCP frame or HTTP body. Default 1 MiB. */
  maxFrameBytes?: number;
  /**
   * Bytes of requests (frames, bodies) accepted and not yet answered, across the cluster,
   * before E_OVERLOADED: maxQueue bounds their number, this their size. Default 256 MiB.
   */
  maxPendingBytes?: number;
  /** Largest checkpoint state, as JSON. Default 1 MiB. */
  maxCheckpointBytes?: number;
  /**
   * Largest handler result, as JSON bytes: a larger one answers E_HANDLER naming this
   * option, so no handler can make the primary hold (or a slow client pin) a huge reply.
   * Default 16 MiB.
   */
  maxResultBytes?: number;
  /**
   * Where thread nodes run: "process" (default), in one child process that hosts them all,
   * so no handler's memory use can abort the primary (a V8 out-of-memory abort in a thread
   * can end its whole process, nodejs/node#47224); or "primary", in the primary's own
   * process: one hop less per request, but such an abort takes the primary down.
   */
  threadHost?: "process" | "primary";
  /**
   * How long a node may take to load every handler before it is killed: `createCluster`
   * (and `crew start`) then fail naming the file, and a restart is retried with backoff.
   * Default 30000.
   */
  nodeStartTimeoutMs?: number;
  /**
   * How long a node process, or the thread host, may stay stopped (SIGSTOP from outside:
   * state "T" in /proc/<pid>/stat) before it is killed: its requests are then retried on
   * healthy nodes from their checkpoints, as after a crash, instead of waiting for their
   * deadlines. Linux only (elsewhere nothing is watched). Default 1000; 0 turns it off.
   */
  frozenNodeMs?: number;
  /** Heap cap per node. Default 2048. */
  nodeMemoryMb?: number;
  /** Attempts running at once on one node. Default 1. */
  nodeConcurrency?: number;
  /**
   * Short attempts a node may hold waiting, beyond nodeConcurrency, while every node is
   * busy: fewer wake-ups per request. Only handlers measured to run well under a
   * millisecond are sent ahead, so a long job never waits behind another. Default 16; 0 turns it off.
   */
  nodePipeline?: number;
  /**
   * Requests a busy thread node may hold ahead (0 or 1), long ones included: it starts
   * the held one as soon as its slot frees; a node that frees first takes it back
   * (exactly once, by compare-and-swap in memory the thread shares with its transport,
   * in the primary or in the thread host). Default 1; 0 turns it off. Process nodes hold
   * nothing ahead.
   */
  nodeLookahead?: number;
  /** Requests in flight on one connection before the primary stops reading from it. Default 1024. */
  maxConnectionInflight?: number;
  /** How long a handler may run past its deadline or cancel before its node is killed. Default 1000. */
  killGraceMs?: number;
  /** How long close() waits for in-flight work. Default 30000. */
  drainTimeoutMs?: number;
  /** First restart delay of a node that keeps dying before answering anything. Default 100. */
  restartBackoffMs?: number;
  /** Cap of that delay. Default 5000. */
  restartBackoffMaxMs?: number;
  /**
   * How much waiting one priority step is worth, against starvation: a request ranks as if
   * it had arrived priority × priorityAgingMs earlier. 0 means strict priority (a low
   * priority may starve). Default 1000.
   */
  priorityAgingMs?: number;
  /** Open connections per front (TCP, HTTP); one more is answered E_OVERLOADED and closed. Default 1024. */
  maxConnections?: number;
  /** A connection with nothing in flight that sends nothing for this long is closed; 0: never. Default 300000. */
  idleConnectionMs?: number;
  /**
   * Reply bytes a connection may leave unread before its requests still waiting are held
   * back (not run) until it reads. Default 8 MiB.
   */
  maxUnsentReplyBytes?: number;
  /** Host header values the HTTP front answers besides loopback names and its own address; "*": any. */
  allowedHosts?: string | string[];
  /** Redis URL (redis://HOST:PORT[/DB]): this primary becomes one host of a cluster sharing that Redis. */
  redis?: string;
  /** The cluster's name in Redis (hosts with the same Redis and name share work). Default "crew". */
  cluster?: string;
  /** This host's id, unique in the cluster. Default: hostname-pid. */
  hostId?: string;
  /** A host silent this long is dead: other hosts take over its requests. Default 1000. */
  hostTimeoutMs?: number;
  /** An SQLite file where keyed requests, their checkpoints and replies are kept across restarts (DESIGN.md). Default: none. */
  journal?: string;
  /** "normal": a killed primary loses nothing committed; "full": an OS crash or power loss neither (an fsync per commit). Default "normal". */
  journalSync?: "normal" | "full";
  /** How long a keyed request's reply is kept for replay, ms. Default 600000. */
  resultTtlMs?: number;
  /** Idempotency keys held (open, or answered and kept for replay) before a new key answers E_OVERLOADED. Default 1000000. */
  maxKeptReplies?: number;
  /** Reload (with no downtime) whenever a file in the handlers folder changes. Default false. */
  watch?: boolean;
  logLevel?: string;
  /** A pino logger of your own (its level wins over logLevel). */
  logger?: Logger;
}

export type ResolvedOptions = Required<Omit<ClusterOptions, "handlers" | "weights" | "seed" | "logger" | "allowedHosts" | "journal" | "threads" | "processes" | "redis">> & {
  /** Thread nodes at start, and the fewest kept (MIN of "MIN..MAX"). */
  threads: number;
  /** The most thread nodes (MAX of "MIN..MAX"; = threads for a plain number). */
  maxThreads: number;
  processes: number;
  maxProcesses: number;
  /** An absolute path. */
  handlers: string;
  journal: string | null;
  redis: string | null;
  allowedHosts: string[];
  weights: Record<string, number>;
  seed: number | null;
  logger: Logger | null;
};

export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;

export function resolveOptions(input: ClusterOptions = {}): ResolvedOptions {
  if (typeof input !== "object" || input === null) throw new InvalidOptionError("options must be an object");
  const processesGiven = input.processes !== undefined;
  const out: ResolvedOptions = {
    handlers: handlersPath(input.handlers ?? "workers"),
    ...nodeRange(input.threads ?? (processesGiven ? 0 : availableParallelism()), "threads", "maxThreads"),
    ...nodeRange(input.processes ?? 0, "processes", "maxProcesses"),
    scaleUpMs: int(input.scaleUpMs ?? 100, "scaleUpMs", 1, 3600_000),
    idleTimeoutMs: int(input.idleTimeoutMs ?? 30_000, "idleTimeoutMs", 1, 24 * 3600_000),
    balancer: oneOf(input.balancer ?? "least-outstanding", "balancer", BALANCER_NAMES),
    weights: weights(input.weights),
    seed: input.seed === undefined ? null : int(input.seed, "seed", 0, 2 ** 32 - 1),
    maxAttempts: int(input.maxAttempts ?? 3, "maxAttempts", 1, 100),
    timeoutMs: int(input.timeoutMs ?? 60_000, "timeoutMs", 1, MAX_TIMEOUT_MS),
    maxQueue: int(input.maxQueue ?? 10_000, "maxQueue", 0, 10_000_000),
    maxFrameBytes: int(input.maxFrameBytes ?? 1024 * 1024, "maxFrameBytes", 64, 1024 ** 3),
    maxPendingBytes: int(input.maxPendingBytes ?? 256 * 1024 * 1024, "maxPendingBytes", 64, 2 ** 50),
    maxCheckpointBytes: int(input.maxCheckpointBytes ?? 1024 * 1024, "maxCheckpointBytes", 2, 1024 ** 3),
    maxResultBytes: int(input.maxResultBytes ?? 16 * 1024 * 1024, "maxResultBytes", 2, 1024 ** 3),
    threadHost: oneOf(input.threadHost ?? "process", "threadHost", ["process", "primary"] as const),
    nodeStartTimeoutMs: int(input.nodeStartTimeoutMs ?? 30_000, "nodeStartTimeoutMs", 1, 3600_000),
    frozenNodeMs: int(input.frozenNodeMs ?? 1000, "frozenNodeMs", 0, 3600_000),
    nodeMemoryMb: int(input.nodeMemoryMb ?? 2048, "nodeMemoryMb", 16, 1024 * 1024),
    nodeConcurrency: int(input.nodeConcurrency ?? 1, "nodeConcurrency", 1, 10_000),
    nodePipeline: int(input.nodePipeline ?? 16, "nodePipeline", 0, 1024),
    nodeLookahead: int(input.nodeLookahead ?? 1, "nodeLookahead", 0, 1),
    maxConnectionInflight: int(input.maxConnectionInflight ?? 1024, "maxConnectionInflight", 1, 1_000_000),
    killGraceMs: int(input.killGraceMs ?? 1000, "killGraceMs", 0, 600_000),
    drainTimeoutMs: int(input.drainTimeoutMs ?? 30_000, "drainTimeoutMs", 0, 24 * 3600_000),
    restartBackoffMs: int(input.restartBackoffMs ?? 100, "restartBackoffMs", 0, 600_000),
    restartBackoffMaxMs: int(input.restartBackoffMaxMs ?? 5000, "restartBackoffMaxMs", 0, 3600_000),
    priorityAgingMs: int(input.priorityAgingMs ?? 1000, "priorityAgingMs", 0, 3600_000),
    maxConnections: int(input.maxConnections ?? 1024, "maxConnections", 1, 1_000_000),
    idleConnectionMs: int(input.idleConnectionMs ?? 300_000, "idleConnectionMs", 0, MAX_TIMEOUT_MS),
    maxUnsentReplyBytes: int(input.maxUnsentReplyBytes ?? 8 * 1024 * 1024, "maxUnsentReplyBytes", 1, 2 ** 40),
    allowedHosts: hostList(input.allowedHosts),
    journal: input.journal === undefined ? null : resolve(str(input.journal, "journal")),
    journalSync: oneOf(input.journalSync ?? "normal", "journalSync", ["normal", "full"] as const),
    resultTtlMs: int(input.resultTtlMs ?? 600_000, "resultTtlMs", 1, MAX_TIMEOUT_MS),
    maxKeptReplies: int(input.maxKeptReplies ?? 1_000_000, "maxKeptReplies", 1, 100_000_000),
    watch: bool(input.watch ?? false, "watch"),
    redis: input.redis === undefined ? null : redisUrl(input.redis),
    cluster: name(input.cluster ?? "crew", "cluster"),
    hostId: name(input.hostId ?? `${hostname().replace(/[^A-Za-z0-9._-]/g, "-").slice(0, 48)}-${process.pid}`, "hostId"),
    hostTimeoutMs: int(input.hostTimeoutMs ?? 1000, "hostTimeoutMs", 40, 600_000),
    logLevel: oneOf(input.logLevel ?? "info", "logLevel", LOG_LEVELS),
    logger: input.logger ?? null,
  };
  rejectUnknownKeys(input, out);
  if (out.redis !== null && out.journal !== null) {
    throw new InvalidOptionError("journal and redis exclude each other: with redis, Redis keeps the requests, checkpoints and replies of every host");
  }
  if (out.threads + out.processes === 0 && out.redis === null) {
    throw new InvalidOptionError("threads and processes must not both be 0 (or both start at 0) without redis: a cluster needs at least one node (with redis, a host with none is a gateway)");
  }
  return out;
}

/**
 * JS callers have no excess-property check: a misspelt key (`maxAttempt`) would be
 * ignored in silence. Every key must be one resolveOptions filled in.
 */
function rejectUnknownKeys(input: object, known: object): void {
  for (const key of Object.keys(input)) {
    if (key in known) continue;
    if (LISTEN_KEYS.includes(key)) throw new InvalidOptionError(`${key} is an option of cluster.listen(), not of createCluster()`);
    const near = nearest(key, Object.keys(known));
    throw new InvalidOptionError(`unknown option ${JSON.stringify(key)}${near ? ` (did you mean ${near}?)` : ""}`);
  }
}

/** A folder path from a path, a `file:` URL string or a URL; relative paths resolve against the cwd. */
/** The keys of cluster.listen()'s options, named when one is given to createCluster(). */
const LISTEN_KEYS = ["port", "httpPort", "host", "adminToken"];

/**
 * Checks a listen address, for cluster.listen() and for the CLI before any node starts:
 * ports are integers 0–65535 (0 picks a free one), the TCP and HTTP ports differ, the
 * host is a non-empty string. Returns the port and host with defaults filled in.
 * `listening` false (a client's view of a cluster) skips the check that the ports differ.
 * @throws InvalidOptionError naming port, httpPort or host.
 */
export function checkListenAddress(input: { host?: unknown; port?: unknown; httpPort?: unknown }, listening = true): { host: string; port: number; httpPort: number | null } {
  const host = str(input.host ?? DEFAULT_HOST, "host");
  const port = int(input.port ?? DEFAULT_PORT, "port", 0, 65535);
  const httpPort = input.httpPort === undefined ? null : int(input.httpPort, "httpPort", 0, 65535);
  if (listening && httpPort !== null && httpPort !== 0 && httpPort === port) {
    throw new InvalidOptionError(`httpPort must differ from the TCP port: both are ${port} (HTTP and TCP need a port each)`);
  }
  return { host, port, httpPort };
}

function handlersPath(value: unknown): string {
  if (value instanceof URL || (typeof value === "string" && value.startsWith("file:"))) {
    try {
      return resolve(fileURLToPath(value));
    } catch (err) {
      throw new InvalidOptionError(`handlers must be a file: URL or a path, got ${JSON.stringify(String(value))}: ${(err as Error).message}`);
    }
  }
  return resolve(str(value, "handlers"));
}

function str(value: unknown, name: string): string {
  if (typeof value !== "string" || value.length === 0) {
    throw new InvalidOptionError(`${name} must be a non-empty string, got ${describeValue(value)}`);
  }
  return value;
}

function redisUrl(value: unknown): string {
  if (typeof value !== "string" || !/^rediss?:\/\/[^\s]+$/.test(value)) {
    throw new InvalidOptionError(`redis must be a URL like redis://127.0.0.1:6379/0, got ${describeValue(value)}`);
  }
  return value;
}

/** Cluster names and host ids go into Redis keys: short, plain characters. */
function name(value: unknown, option: string): string {
  if (typeof value !== "string" || !/^[A-Za-z0-9._-]{1,64}$/.test(value)) {
    throw new InvalidOptionError(`${option} must be 1 to 64 of A-Z a-z 0-9 . _ -, got ${describeValue(value)}`);
  }
  return value;
}

const MAX_NODES = 256;

/**
 * A node count: N (N..N), or "MIN..MAX" for elastic nodes. Returns { [name]: MIN, [maxName]: MAX }.
 * A numeric string alone is refused like any non-number (a JS caller passing "2" has a bug).
 */
function nodeRange<K extends string, M extends string>(value: unknown, name: K, maxName: M): Record<K | M, number> {
  let min: number;
  let max: number;
  const range = typeof value === "string" ? /^\s*(\d+)\s*\.\.\s*(\d+)\s*$/.exec(value) : null;
  if (range) {
    min = Number(range[1]);
    max = Number(range[2]);
    if (min > max || max > MAX_NODES) throw new InvalidOptionError(`${name} must be a range MIN..MAX with 0 ≤ MIN ≤ MAX ≤ ${MAX_NODES}, got ${describeValue(value)}`);
  } else if (typeof value === "string" && value.includes("..")) {
    throw new InvalidOptionError(`${name} must be a number or a range MIN..MAX (like "2..8"), got ${describeValue(value)}`);
  } else {
    min = max = int(value, name, 0, MAX_NODES);
  }
  return { [name]: min, [maxName]: max } as Record<K | M, number>;
}

function bool(value: unknown, name: string): boolean {
  if (typeof value !== "boolean") throw new InvalidOptionError(`${name} must be true or false, got ${describeValue(value)}`);
  return value;
}

function oneOf<T extends string>(value: unknown, name: string, allowed: readonly T[]): T {
  if (!allowed.includes(value as T)) {
    throw new InvalidOptionError(`${name} must be one of ${allowed.join(", ")}; got ${describeValue(value)}`);
  }
  return value as T;
}

/** "a.example,b.example" or an array of names, lower-cased; "*" allows any Host. */
function hostList(value: unknown): string[] {
  if (value === undefined) return [];
  const list = typeof value === "string" ? value.split(",") : value;
  if (!Array.isArray(list) || !list.every((h) => typeof h === "string")) {
    throw new InvalidOptionError(`allowedHosts must be a comma-separated string or an array of host names, got ${describeValue(value)}`);
  }
  const names = list.map((h) => h.trim().toLowerCase()).filter((h) => h !== "");
  const bad = names.find((h) => h !== "*" && !/^[a-z0-9.:_[\]-]+$/.test(h));
  if (bad !== undefined) throw new InvalidOptionError(`allowedHosts: ${JSON.stringify(bad)} is not a host name`);
  return names;
}

function weights(value: unknown): Record<string, number> {
  if (value === undefined) return {};
  if (typeof value === "string") return parseWeights(value);
  if (typeof value !== "object" || value === null) {
    throw new InvalidOptionError('weights must be a string like "t=1,p=3" or an object like { t0: 2 }');
  }
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(value)) {
    if (typeof v !== "number" || !Number.isFinite(v) || v < 0) {
      throw new InvalidOptionError(`weights.${k} must be a finite number ≥ 0, got ${describeValue(v)}`);
    }
    out[k] = v;
  }
  return out;
}
