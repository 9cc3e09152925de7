/**
 * The requests in flight as `GET /v1/requests`, `cluster.requests()` and the dashboard
 * show them: plain data, oldest first.
 */
import type { Job, JobState } from "./job.js";

export interface RequestStatus {
  /** The request id (`meta.requestId`). */
  id: string;
  handler: string;
  /** queued: waiting for any node; parked: waiting for one busy node (hash); running: on `node`. */
  state: Exclude<JobState, "done">;
  /** The node running it now, or null while it waits. */
  node: string | null;
  /** The node of its latest attempt (differs from `node` while a retried request waits). */
  lastNode: string | null;
  /** Attempts started so far (1-based while running; 0 before the first starts). */
  attempt: number;
  priority: number;
  /** Milliseconds since the request was accepted. */
  ageMs: number;
  /** Milliseconds since its last checkpoint was stored, or null when it has none. */
  checkpointAgeMs: number | null;
}

/**
 * Describes open jobs, oldest first; at most `limit` of them (the oldest), so a page
 * polling a cluster with 10,000 queued requests gets a bounded answer.
 */
export function describeRequests(jobs: Iterable<Job>, limit = Infinity, now = performance.now()): RequestStatus[] {
  const open: Job[] = [];
  for (const job of jobs) if (job.state !== "done") open.push(job);
  open.sort((a, b) => a.submittedAt - b.submittedAt);
  return open.slice(0, limit).map((job) => ({
    id: job.requestId,
    handler: job.handler,
    state: job.state as RequestStatus["state"],
    node: job.state === "running" ? (job.attempt?.node.id ?? job.lastNode) : null,
    lastNode: job.lastNode,
    attempt: job.attempts,
    priority: job.priority,
    ageMs: round(now - job.submittedAt),
    checkpointAgeMs: job.checkpoint === null || job.checkpointAt === 0 ? null : round(now - job.checkpointAt),
  }));
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}
