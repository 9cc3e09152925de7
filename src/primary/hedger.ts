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
import type { HandlerSpec } from "./handler-registry.js";

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
  readonly #p95 = new Map<string, RunningP95>();
  #tokens = 1;
  readonly stats: HedgeStats = { hedges: 0, hedgeWins: 0, hedgesSkipped: 0 };

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

  /** How long to wait before looking again at a due hedge that found no token or no free node. */
  retryMs(spec: HandlerSpec): number {
    return this.#after(spec) ?? 1;
  }

  /** A first attempt of a hedged handler answered after `ms` (primary's clock, send to reply). */
  record(handler: string, ms: number): void {
    let p = this.#p95.get(handler);
    if (!p) this.#p95.set(handler, (p = new RunningP95()));
    p.add(ms);
  }

  /** Spends a token for a hedge; false when the budget is spent. */
  take(): boolean {
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }
}
