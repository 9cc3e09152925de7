/**
 * Cluster options: one interface, one table of defaults, checked once at the edge.
 * `createCluster` and the CLI both go through `resolveOptions`, so a bad value gets the
 * same message from either, naming the option; nothing downstream sees `undefined`.
 */
import { availableParallelism } from "node:os";
import { resolve } from "node:path";
import type { Logger } from "pino";
import { InvalidOptionError } from "./errors.js";
import { BALANCER_NAMES, type BalancerName } from "./primary/balancers/balancer.js";
import { parseWeights } from "./primary/balancers/index.js";
import { MAX_TIMEOUT_MS } from "./protocol/frames.js";
import { int } from "./validate.js";

export interface ClusterOptions {
  /** Folder of handler modules. Default "workers". */
  handlers?: string;
  /** Thread nodes. Default: one per core when `processes` is not given, else 0. */
  threads?: number;
  /** Child-process nodes. Default 0. */
  processes?: number;
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
  logLevel?: string;
  /** A pino logger of your own (its level wins over logLevel). */
  logger?: Logger;
}

export type ResolvedOptions = Required<Omit<ClusterOptions, "weights" | "seed" | "logger">> & {
  weights: Record<string, number>;
  seed: number | null;
  logger: Logger | null;
};

export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;

export function resolveOptions(input: ClusterOptions = {}): ResolvedOptions {
  if (typeof input !== "object" || input === null) throw new InvalidOptionError("options must be an object");
  const processesGiven = input.processes !== undefined;
  const out: ResolvedOptions = {
    handlers: resolve(str(input.handlers ?? "workers", "handlers")),
    threads: int(input.threads ?? (processesGiven ? 0 : availableParallelism()), "threads", 0, 256),
    processes: int(input.processes ?? 0, "processes", 0, 256),
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
    nodeMemoryMb: int(input.nodeMemoryMb ?? 2048, "nodeMemoryMb", 16, 1024 * 1024),
    nodeConcurrency: int(input.nodeConcurrency ?? 1, "nodeConcurrency", 1, 10_000),
    nodePipeline: int(input.nodePipeline ?? 16, "nodePipeline", 0, 1024),
    maxConnectionInflight: int(input.maxConnectionInflight ?? 1024, "maxConnectionInflight", 1, 1_000_000),
    killGraceMs: int(input.killGraceMs ?? 1000, "killGraceMs", 0, 600_000),
    drainTimeoutMs: int(input.drainTimeoutMs ?? 30_000, "drainTimeoutMs", 0, 24 * 3600_000),
    restartBackoffMs: int(input.restartBackoffMs ?? 100, "restartBackoffMs", 0, 600_000),
    restartBackoffMaxMs: int(input.restartBackoffMaxMs ?? 5000, "restartBackoffMaxMs", 0, 3600_000),
    priorityAgingMs: int(input.priorityAgingMs ?? 1000, "priorityAgingMs", 0, 3600_000),
    logLevel: oneOf(input.logLevel ?? "info", "logLevel", LOG_LEVELS),
    logger: input.logger ?? null,
  };
  if (out.threads + out.processes === 0) {
    throw new InvalidOptionError("threads and processes must not both be 0: a cluster needs at least one node");
  }
  return out;
}

function str(value: unknown, name: string): string {
  if (typeof value !== "string" || value.length === 0) {
    throw new InvalidOptionError(`${name} must be a non-empty string, got ${JSON.stringify(value)}`);
  }
  return value;
}

function oneOf<T extends string>(value: unknown, name: string, allowed: readonly T[]): T {
  if (!allowed.includes(value as T)) {
    throw new InvalidOptionError(`${name} must be one of ${allowed.join(", ")}; got ${JSON.stringify(value)}`);
  }
  return value as T;
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
      throw new InvalidOptionError(`weights.${k} must be a finite number ≥ 0, got ${JSON.stringify(v)}`);
    }
    out[k] = v;
  }
  return out;
}
