/**
 * One accepted request, across all its attempts. It holds the request's last
 * checkpoint (so nothing outlives the request) and answers exactly once.
 */
import type { ComputeNode } from "../nodes/compute-node.js";
import type { Outcome, ReplyMeta } from "../protocol/frames.js";
import type { HandlerSpec } from "./handler-registry.js";
import type { Queued, WaitQueue } from "./queue.js";

export type { Outcome } from "../protocol/frames.js";

/** Receives a request's one answer. May run synchronously inside submit() for requests refused at the door. */
export type DoneCallback = (outcome: Outcome) => void;

/**
 * How a store keeps a keyed request's progress (src/store/keyed.ts): the dispatcher
 * reports each attempt, and acknowledges a checkpoint only once `checkpoint` has kept it
 * (when it answers with a promise, once that resolves to true).
 */
export interface Durability {
  attemptStarted(job: Job): void;
  checkpoint(job: Job, json: string): boolean | Promise<boolean>;
}

/**
 * queued: waiting for a node; parked: waiting for one busy node it is bound to (hash);
 * held: waiting, kept from starting while its client does not read its replies;
 * running: an attempt is on a node; done: answered.
 */
export type JobState = "queued" | "parked" | "held" | "running" | "done";

export interface Attempt {
  readonly a: number;
  readonly job: Job;
  readonly node: ComputeNode;
  /** Kills the node if the handler outlives its deadline or cancel by the grace period. */
  graceTimer: NodeJS.Timeout | null;
  /** Set when the request gave up on this attempt (deadline, cancel): the abort's code. */
  abortedWith: string | null;
  /** The run time the dispatcher expected when it sent the attempt (pipelining budget). */
  readonly expectedMs: number;
  /** Held ahead (lookahead.ts): the job's node and version before, restored if it is taken back. */
  held?: { lastNode: string | null; version: string | undefined };
  /** Hedged handlers: when it was sent (performance.now() ms), and the timer that hedges it. */
  sentAt?: number;
  hedgeTimer?: NodeJS.Timeout | null;
}

export class Job implements Queued {
  rank = 0;
  seq = 0;
  heapIndex = -1;
  /** The queue holding the job while queued or parked. */
  queue: WaitQueue<Job> | null = null;
  state: JobState = "queued";
  attempts = 0;
  attempt: Attempt | null = null;
  /** The last checkpoint, as JSON text. */
  checkpoint: string | null = null;
  /** When the last checkpoint was stored (performance.now() ms), 0 before any. */
  checkpointAt = 0;
  /** The node of the latest attempt. */
  lastNode: string | null = null;
  /** The handler version (file hash) that node runs: a reload shows in the reply. */
  version: string | undefined = undefined;
  deadline: NodeJS.Timeout | null = null;
  readonly submittedAt = performance.now();
  /** The payload as JSON text when a front received it (then `payload` is undefined): the node parses it. */
  payloadJson: string | undefined = undefined;
  /** The request's size as received, held against the pending-bytes budget until it answers. */
  bytes = 0;
  /** When the first attempt started, for the queue-wait metric. */
  startedAt = 0;
  /** The request's idempotency key, if it has one. */
  idempotencyKey: string | undefined = undefined;
  /** Set for a keyed request: where its attempts and checkpoints are kept. */
  durable: Durability | null = null;
  /** The hedge: a second attempt running beside `attempt` (hedger.ts), or null. */
  hedge: Attempt | null = null;
  /** True once the request was hedged: never more than one hedge per request. */
  hedged = false;

  constructor(
    readonly requestId: string,
    readonly spec: HandlerSpec,
    readonly payload: unknown,
    readonly key: string | undefined,
    readonly priority: number,
    readonly timeoutMs: number,
    readonly done: DoneCallback,
  ) {}

  /** Keeps `json` as the request's latest checkpoint. */
  storeCheckpoint(json: string): void {
    this.checkpoint = json;
    this.checkpointAt = performance.now();
  }

  get handler(): string {
    return this.spec.name;
  }

  meta(): ReplyMeta {
    const meta: ReplyMeta = { requestId: this.requestId, node: this.lastNode, attempts: this.attempts, ms: Math.round((performance.now() - this.submittedAt) * 100) / 100 };
    if (this.version !== undefined) meta.version = this.version;
    return meta;
  }
}
