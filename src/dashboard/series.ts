/**
 * The dashboard's charts: one sample per second of what the cluster answered, its latency
 * percentiles and its load, kept for the last minutes. Latencies go into an HDR histogram
 * (hdr-histogram-js, as `crew bench` measures) that is read and reset each second, so a
 * percentile costs no sorting and recording one answer costs a few tens of nanoseconds.
 */
import type { Histogram } from "hdr-histogram-js";
import { newLatencyHistogram } from "../bench/load.js";
import { Ring } from "./ring.js";

export interface Sample {
  /** End of the second, epoch ms. */
  t: number;
  /** Answers with a result in that second. */
  ok: number;
  /** Answers with an error (handler error, crash, timeout, cancel …). */
  failed: number;
  /** Requests refused at the door (overloaded, unknown handler, draining …). */
  refused: number;
  /** Latency from acceptance to the answer, ms; null in a second without answers. */
  p50: number | null;
  p99: number | null;
  /** At the end of the second: requests waiting for a node, attempts on nodes. */
  queue: number;
  inFlight: number;
}

/** Five minutes of one-second samples. */
export const SAMPLES_KEPT = 300;

export class Series {
  readonly samples = new Ring<Sample>(SAMPLES_KEPT);
  /** Microseconds, 1 µs to one hour: the histogram `crew bench` uses. */
  readonly #latency: Histogram = newLatencyHistogram();
  #ok = 0;
  #failed = 0;
  #refused = 0;

  /** Counts a request refused before it was accepted. */
  refused(): void {
    this.#refused++;
  }

  /** Counts one answer and its latency in ms. */
  record(ms: number, ok: boolean): void {
    if (ok) this.#ok++;
    else this.#failed++;
    this.#latency.recordValue(Math.min(3_600_000_000, Math.max(1, Math.round(ms * 1000))));
  }

  /** Closes the current second with the cluster's load now; returns the sample. */
  sample(queue: number, inFlight: number, now = Date.now()): Sample & { seq: number } {
    const answered = this.#ok + this.#failed > 0;
    const pct = (p: number): number | null => (answered ? Math.round(this.#latency.getValueAtPercentile(p)) / 1000 : null);
    const sample = this.samples.push({ t: now, ok: this.#ok, failed: this.#failed, refused: this.#refused, p50: pct(50), p99: pct(99), queue, inFlight });
    this.#latency.reset();
    this.#ok = 0;
    this.#failed = 0;
    this.#refused = 0;
    return sample;
  }
}
