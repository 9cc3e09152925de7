/**
 * The one thing that differs between a thread node and a process node: how its code
 * is started, talked to and killed. Everything else (state, counters, in-flight
 * attempts, the crash path) lives in ComputeNode, which never asks which kind it holds.
 */
import type { Logger } from "pino";
import type { FromNode, NodeInit, NodeKind, ToNode } from "./messages.js";

/** How a node's code ended. Exactly one of these reaches `onExit`, once. */
export interface ExitInfo {
  /** Exit code, when the thread or process exited with one. */
  code: number | null;
  /** The signal that killed a process node. */
  signal: NodeJS.Signals | null;
  /** A short human reason: "exited with code 3", "out of memory", "killed by SIGKILL", "IPC channel lost". */
  reason: string;
}

export interface TransportEvents {
  onMessages(msgs: FromNode[]): void;
  onExit(info: ExitInfo): void;
}

export interface NodeTransport {
  readonly kind: NodeKind;
  /** OS process id (process nodes, and the primary's pid for thread nodes). */
  readonly pid: number;
  /** Worker thread id; null for process nodes. */
  readonly threadId: number | null;
  /**
   * Sends a batch; dropped silently once the node is gone (its exit is reported instead).
   * `now`: the batch must not wait for any batching further on (the thread host's one
   * write per turn): it carries an abort or a take. Transports that send at once ignore it.
   */
  post(msgs: ToNode[], now?: boolean): void;
  /** Hard stop: terminate the thread or SIGKILL the process. onExit follows. */
  kill(): void;
  /**
   * The attempts the node's code was running when last seen, read from memory it shares
   * with its transport (still readable after the thread died); null when the transport
   * cannot tell but results always leave before the next attempt starts (process nodes:
   * the primary goes by dispatch order); "any" when any unanswered attempt may have
   * started (hosted threads whose host died, taking their memory and the results it had
   * not relayed yet: every one is charged).
   */
  runningNow(): number[] | null | "any";
  /**
   * Whether the node can hold a request ahead and give it back (lookahead.ts): thread
   * nodes, in the primary or hosted, whose transport answers `take` messages with
   * `taken` by compare-and-swap on memory the thread shares with it. Process nodes: false.
   */
  readonly lookahead: boolean;
}

export interface TransportOptions {
  init: NodeInit;
  /** Caps the node's old-generation heap. */
  memoryMb: number;
  /** Node processes (and the thread host): killed after being stopped this long, ms; 0: never (child.ts). */
  frozenMs: number;
  events: TransportEvents;
  /** Where the node's output (its log lines, a handler's console.log, V8's reports) goes. */
  log: Logger;
}

export type TransportFactory = (options: TransportOptions) => NodeTransport;
