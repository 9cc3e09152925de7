/**
 * Hedged requests ("The Tail at Scale", Dean & Barroso, CACM 2013): for a handler whose
 * config has `hedgeAfterMs`, an attempt that has run that long (a number of ms, or "p95":
 * the handler's running 95th percentile) without answering gets one second attempt on
 * another node, from the same checkpoint; the first reply wins and the other is aborted.
 *
 * This module decides when and whether; the dispatcher runs the attempts. Rules:
 * - never more than one hedge per request (even across crash retries);
 * - a hedge only starts on a node with a free slot now, other than the first attempt's:
 *   it never waits in the queue, and never behind first attempts; with no free node (or
 *   no token, below) the attempt is looked at again after the same delay while it runs;
 * - a token bucket caps the extra load: every first attempt of a hedged handler earns
 *   HEDGE_BUDGET (0.05) of a token, a hedge spends one, the bucket holds at most
 *   HEDGE_BURST; when everything is slow the tokens run out and hedging stops.
 */
import type { ComputeNode } from "../nodes/compute-node.js";
import type { HandlerSpec } from "./handler-registry.js";
import type { Attempt, Job } from "./job.js";

/** What the hedger needs from the dispatcher, which owns the attempts. */
export interface HedgeHost {
  /** A node other than `busy` with a free slot now that may run `job`, or null. */
  spare(job: Job, busy: ComputeNode): ComputeNode | null;
  /** Starts `job`'s hedge on `node` (sets job.hedge and job.hedged). */
  startHedge(job: Job, node: ComputeNode): void;
  /** True while draining: no hedge then. */
  draining(): boolean;
}

/** Extra attempts allowed, as a share of first attempts of hedged handlers. */
export const HEDGE_BUDGET = 0.05;
/** Most hedges that may start back to back after a quiet spell. */
export const HEDGE_BURST = 10;
/** Run times kept per handler for its running p95, and how many before "p95" hedges at all. */
const WINDOW = 512;
const MIN_SAMPLES = 32;
/** The p95 is recomputed every this many new samples (a sort of WINDOW numbers). */
const RECOMPUTE_EVERY = 32;

/** A handler's running 95th percentile over its last WINDOW run times. */
class RunningP95 {
  readonly #ring = new Float64Array(WINDOW);
  #count = 0;
  value = Infinity;

  add(ms: number): void {
    this.#ring[this.#count % WINDOW] = ms;
    this.#count++;
    if (this.#count >= MIN_SAMPLES && this.#count % RECOMPUTE_EVERY === 0) {
      const n = Math.min(this.#count, WINDOW);
      const sorted = this.#ring.slice(0, n).sort();
      this.value = sorted[Math.min(n - 1, Math.floor(0.95 * n))]!;
    }
  }
}

export interface HedgeStats {
  /** Hedges started. */
  hedges: number;
  /** Requests a hedge answered first. */
  hedgeWins: number;
  /** Times a due hedge found no token or no free node (it is looked at again later). */
  hedgesSkipped: number;
}

export class Hedger {
  readonly #host: HedgeHost;
  readonly #p95 = new Map<string, RunningP95>();
  #tokens = 1;
  readonly stats: HedgeStats = { hedges: 0, hedgeWins: 0, hedgesSkipped: 0 };

  constructor(host: HedgeHost) {
    this.#host = host;
  }

  /** A first attempt of a hedged handler was sent: sets the timer that may hedge it. */
  arm(attempt: Attempt): void {
    attempt.sentAt = performance.now();
    const delayMs = this.delayMs(attempt.job.spec);
    if (delayMs !== null) attempt.hedgeTimer = setTimeout(this.#due, delayMs, attempt);
  }

  /** A first attempt of a hedged handler answered: its time feeds the running p95. */
  answered(attempt: Attempt, ok: boolean): void {
    if (attempt.sentAt !== undefined && ok) this.record(attempt.job.handler, performance.now() - attempt.sentAt);
  }

  readonly #due = (attempt: Attempt): void => {
    attempt.hedgeTimer = null;
    const job = attempt.job;
    if (job.state !== "running" || job.attempt !== attempt || job.hedged || this.#host.draining()) return;
    const node = this.#host.spare(job, attempt.node);
    if (!node || !this.#take()) {
      // No token or no free node now: look again after the same delay while it still runs.
      // Fast attempts end before then, so the tokens go to the really slow ones.
      this.stats.hedgesSkipped++;
      attempt.hedgeTimer = setTimeout(this.#due, this.#after(job.spec) ?? 1, attempt);
      return;
    }
    this.stats.hedges++;
    this.#host.startHedge(job, node);
  };

  /**
   * When a first attempt of `spec` started now should be hedged, in ms from now, or null
   * for none (the handler does not hedge, or its p95 is not known yet). Earns the bucket
   * its share for every attempt of a hedged handler.
   */
  delayMs(spec: HandlerSpec): number | null {
    const after = spec.hedgeAfterMs;
    if (after === null) return null;
    this.#tokens = Math.min(HEDGE_BURST, this.#tokens + HEDGE_BUDGET);
    return this.#after(spec);
  }

  /** hedgeAfterMs in ms: the number, or the running p95 (null while unknown). */
  #after(spec: HandlerSpec): number | null {
    if (spec.hedgeAfterMs !== "p95") return spec.hedgeAfterMs;
    const p95 = this.#p95.get(spec.name)?.value ?? Infinity;
    return Number.isFinite(p95) ? Math.max(1, Math.ceil(p95)) : null;
  }

  /** A first attempt of a hedged handler answered after `ms` (primary's clock, send to reply). */
  record(handler: string, ms: number): void {
    let p = this.#p95.get(handler);
    if (!p) this.#p95.set(handler, (p = new RunningP95()));
    p.add(ms);
  }

  /** Spends a token for a hedge; false when the budget is spent. */
  #take(): boolean {
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }
}
