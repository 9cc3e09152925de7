/**
 * The typed, tagged messages between the primary and a compute node. Both transports
 * (a MessagePort for threads, fork IPC for processes) carry batches: arrays of these,
 * so a busy node can answer several attempts with one wake-up of the primary.
 */
import type { WireError } from "../errors.js";

export type NodeKind = "thread" | "process";

export type IsolationMode = "thread" | "process";

/** What a handler module may export as `config`; every field optional. */
export interface HandlerConfig {
  timeoutMs?: number;
  maxAttempts?: number;
  isolation?: IsolationMode;
  /** Placement preference: run on this kind of node when one has room, else anywhere allowed. */
  prefer?: NodeKind;
  /**
   * Hedged requests: an attempt running this long (ms, or "p95" of the handler's running
   * run times) gets a second attempt on another node; the first reply wins. Only for
   * handlers safe to run twice.
   */
  hedgeAfterMs?: number | "p95";
}

/** Sent once, when the node starts: everything the node runtime needs. */
export interface NodeInit {
  nodeId: string;
  kind: NodeKind;
  /** handler name → absolute file path. */
  handlers: Record<string, string>;
  /** handler name → the .mjs the primary compiled a TypeScript handler into (primary/transpile.ts). */
  compiled?: Record<string, string>;
  logLevel: string;
  maxCheckpointBytes: number;
  /** Largest result, as JSON bytes: a larger one answers E_HANDLER naming the limit. */
  maxResultBytes: number;
  /** Attempts the node runs at once; more may wait in the node (pipelining). */
  concurrency: number;
}

// primary → node
export interface RunMsg {
  t: "run";
  /** Attempt id: unique in the primary for the cluster's life. */
  a: number;
  requestId: string;
  handler: string;
  payload: unknown;
  /** The payload as JSON text (requests from the TCP and HTTP fronts): parsed here, never in the primary. */
  payloadJson?: string | undefined;
  attempt: number;
  /** The last checkpoint as JSON text, or null on a fresh start. */
  resumeFrom: string | null;
  /**
   * Held ahead (lookahead, thread nodes): the node must win the shared hand-over cell
   * before it starts this attempt, as the primary may have taken it back (lookahead.ts),
   * and says `started` when it does.
   */
  held?: true;
  /** The request's idempotency key, when it has one. */
  idempotencyKey?: string | undefined;
}
export interface AbortMsg {
  t: "abort";
  a: number;
  reason: WireError;
}
export interface CheckpointAckMsg {
  t: "ckpt-ack";
  a: number;
  seq: number;
}
export interface StopMsg {
  t: "stop";
}
export interface MemoryQueryMsg {
  t: "mem?";
  q: number;
}
/**
 * Lookahead: take back held attempt `a` if the node has not started it. Never reaches the
 * node's code: the thread transport answers it with `taken`, by compare-and-swap on the
 * hand-over cell (hand-over.ts), before it delivers the rest of its batch (primary/lookahead.ts).
 */
export interface TakeMsg {
  t: "take";
  a: number;
}
export type ToNode = RunMsg | AbortMsg | CheckpointAckMsg | StopMsg | MemoryQueryMsg | TakeMsg;

// node → primary
export interface ReadyMsg {
  t: "ready";
  configs: Record<string, HandlerConfig>;
}
export interface InitFailedMsg {
  t: "init-failed";
  file: string;
  message: string;
}
export interface ResultMsg {
  t: "result";
  a: number;
  ok: boolean;
  /**
   * The handler's return value as JSON text when ok. The node serialises it, so the
   * primary (the cluster's bottleneck) splices it into the reply without parsing it.
   */
  json?: string;
  /** What the handler threw when not ok. */
  error?: WireError;
  /** How long the handler ran, measured in the node: feeds the pipelining estimate. */
  ms: number;
  /** The attempt never ran (aborted while waiting in the node, or its payload could not be sent). */
  skipped?: boolean;
}
export interface CheckpointMsg {
  t: "ckpt";
  a: number;
  seq: number;
  /** The state as JSON text: the primary stores it as is. */
  json: string;
}
export interface MemoryMsg {
  t: "mem";
  q: number;
  heapUsed: number;
  rss: number;
}
/** The node starts importing `file`: a start that never ends names it. */
export interface LoadingMsg {
  t: "loading";
  file: string;
}
/** The node claimed held attempt `a` and starts it now: it can hold another. */
export interface StartedMsg {
  t: "started";
  a: number;
}
/** The answer to a `take`: `ok` when the primary won the attempt back (it never runs here). */
export interface TakenMsg {
  t: "taken";
  a: number;
  ok: boolean;
}
export type FromNode = LoadingMsg | ReadyMsg | InitFailedMsg | ResultMsg | CheckpointMsg | MemoryMsg | StartedMsg | TakenMsg;

/**
 * Whether what came in on a process node's IPC channel is one of crew's batches: an array
 * of tagged objects. The channel is the handler's too (`process.send()` in handler code,
 * pm2's `process.send("ready")`), and no such message may reach, let alone end, the primary.
 */
export function isNodeBatch(msgs: unknown): msgs is FromNode[] {
  return Array.isArray(msgs) && msgs.every((m) => typeof m === "object" && m !== null && typeof (m as { t?: unknown }).t === "string");
}

/**
 * The answer for a message that could not be sent to its node (a payload the transport
 * cannot serialise: a BigInt, a cycle, nesting past the serialiser's stack): a run fails
 * alone, E_BAD_REQUEST, as never run; anything else is dropped (null).
 */
export function unsendable(msg: ToNode, err: unknown): ResultMsg | null {
  if (msg.t !== "run") return null;
  const message = `the payload cannot be sent to a node: ${err instanceof Error ? err.message : String(err)}`;
  return { t: "result", a: msg.a, ok: false, error: { code: "E_BAD_REQUEST", message }, ms: 0, skipped: true };
}
