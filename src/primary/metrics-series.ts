/**
 * The plain numbers behind the cluster's metrics: what the dispatcher's observer hooks
 * add to on the hot path (metrics.ts), and what prom-client reads when scraped
 * (metrics-registry.ts).
 */
import type { NodeKind } from "../nodes/messages.js";

/** The label of requests naming no known handler: not a valid handler name, so it never collides. */
export const UNKNOWN_HANDLER_LABEL = "<unknown>";

/** Seconds, from half a millisecond (echo over loopback) to two minutes (long jobs). */
export const BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

/** One histogram series as plain numbers: per-bucket (not yet cumulative) counts, the last for +Inf. */
export class Latency {
  readonly counts = new Array<number>(BUCKETS.length + 1).fill(0);
  sum = 0;
  count = 0;

  observe(seconds: number): void {
    let i = 0;
    while (i < BUCKETS.length && seconds > BUCKETS[i]!) i++;
    this.counts[i]!++;
    this.sum += seconds;
    this.count++;
  }

  reset(): void {
    this.counts.fill(0);
    this.sum = 0;
    this.count = 0;
  }
}

/** One handler's numbers. */
export interface HandlerSeries {
  name: string;
  /** Shown at 0 before anything happens, so rate() sees a handler's first request. */
  zeroed: boolean;
  /** Answers by code ("ok" or the error code). */
  codes: Map<string, number>;
  queue: Latency;
  run: Latency;
  duration: Latency;
  retries: number;
  checkpoints: number;
  /** Hedges started, and requests a hedge answered first (hedger.ts). */
  hedges: number;
  hedgeWins: number;
}

/** One node's deaths and restarts, by its id (a restarted node keeps it). */
export interface NodeCounts {
  id: string;
  kind: NodeKind;
  crashes: number;
  restarts: number;
}
