/**
 * The types a handler author sees. A handler needs nothing from crew at run time:
 * `import type { HandlerContext } from "crew"` is erased by the compiler.
 */
import type { Logger } from "pino";
import type { HandlerConfig, NodeKind } from "./nodes/messages.js";

export type { HandlerConfig, IsolationMode, NodeKind } from "./nodes/messages.js";

/**
 * `State` is the shape of this handler's checkpoints, for TypeScript users:
 * `async (p: Job, ctx: HandlerContext<{ done: number }>) => …` types `resumeFrom` and
 * `checkpoint()` (the primary does not check it; it stores any JSON value).
 */
export interface HandlerContext<State = unknown> {
  /**
   * This request's id: unique across primaries and restarts, the same in every attempt
   * (also after a journal restart or a Redis takeover) and in the reply's meta.requestId.
   */
  readonly requestId: string;
  /** The request's idempotency key, when the client gave one: a natural key for outside writes. */
  readonly idempotencyKey: string | undefined;
  /** 1 on the first attempt, 2 on the first retry after a node failure, … */
  readonly attempt: number;
  /** The last checkpoint this request stored, or undefined on a fresh start. */
  readonly resumeFrom: State | undefined;
  /**
   * Stores `state` (a JSON value) as this request's checkpoint. The promise resolves once
   * the primary holds it: a later attempt then starts from it. Rejects with
   * CheckpointTooLargeError (code E_CHECKPOINT_TOO_LARGE) over the size limit, or a
   * TypeError for a value that is not JSON.
   */
  checkpoint(state: State): Promise<void>;
  /** Aborted on deadline, cancel, client gone or shutdown; `signal.reason` says which. */
  readonly signal: AbortSignal;
  /** A pino logger bound to this request (requestId, attempt, handler, node). */
  readonly log: Logger;
  /** The node running this attempt. */
  readonly node: { readonly id: string; readonly kind: NodeKind };
}

/** What a handler module's default export looks like. */
export type Handler<P = any, R = unknown, State = unknown> = (payload: P, ctx: HandlerContext<State>) => R | Promise<R>;

export interface HandlerModule {
  default: Handler;
  config?: HandlerConfig;
}
