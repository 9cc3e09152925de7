/**
 * Where the fronts (TCP, HTTP, cluster.run) hand requests: the dispatcher on a single
 * host, or the Redis front (src/store/redis/redis-front.ts) when hosts share a queue.
 */
import type { CrewError } from "../errors.js";
import type { SubmitRequest } from "./dispatcher.js";
import type { DoneCallback, Job } from "./job.js";

export interface RequestSink {
  /** Accepts a request (returns its handle) or refuses it at once (calls `done`, returns null). */
  submit(req: SubmitRequest, done: DoneCallback): Job | null;
  /** Cancels a request: it answers `error` (E_CANCELLED by default), or its result if that came first. */
  cancel(job: Job, error?: CrewError): void;
  /** Counts a request a front refused before it became a job. */
  noteRefused(handler: string, code: string): void;
  /** The wait queue is at its cap (the fronts then shed a greedy connection's newest request). */
  readonly queueFull: boolean;
  /** Keeps waiting requests from starting (their client reads no replies), until release(). */
  hold(jobs: Iterable<Job>): void;
  release(jobs: Iterable<Job>): void;
  /** Refuses a request still waiting, with `error`; false when it has started. */
  shed(job: Job, error: CrewError): boolean;
}
