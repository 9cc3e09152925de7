/**
 * The load generator behind `crew bench` and the benchmark suite: `connections` clients,
 * each keeping `pipeline` requests in flight (a closed loop: a slot sends its next
 * request when its reply comes back), until `durationMs` has passed or `requests` have
 * been sent. Latency goes into an HDR histogram in microseconds.
 *
 * It shares the machine with the server it measures, so the hot path stays lean: no
 * exceptions (Client.call resolves error replies), one timestamp pair per request, and
 * the client batches every frame sent in one turn of the event loop into one write.
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { Histogram } from "hdr-histogram-js";
import { errorFromWire, InvalidOptionError } from "../errors.js";
import { newLatencyHistogram } from "./histogram.js";
import { Client } from "../protocol/client.js";
import { describeValue } from "../describe-value.js";

export interface LoadOptions {
  host: string;
  port: number;
  handler: string;
  payload?: unknown;
  /** TCP connections (one Client each). */
  connections: number;
  /** Requests kept in flight per connection. */
  pipeline: number;
  /** Stop sending after this long. Exactly one of durationMs and requests. */
  durationMs?: number;
  /** Stop after sending this many. */
  requests?: number;
  /** Per-request deadline sent to the server; the server's default when absent. */
  timeoutMs?: number;
  /** Aborting stops sending; requests in flight still get their replies. */
  signal?: AbortSignal;
  /** Called for every reply that needed more than one attempt, with performance.now() at its arrival. */
  onRetried?: (arrivedAt: number, attempts: number) => void;
  /**
   * Send one request alone first; when it fails with a code every request would get
   * (PROBE_FATAL: no such handler, a payload the cluster refuses, no node for it), `done`
   * rejects with that error instead of loading. The probe counts as one of the requests.
   */
  probe?: boolean;
  /** Clients with `resubmit: true`: every request keyed, resent after a lost connection. */
  resubmit?: boolean;
}

/** Replies that the next request would get too: not worth loading a cluster with. */
export const PROBE_FATAL = ["E_UNKNOWN_HANDLER", "E_BAD_REQUEST", "E_NO_NODE", "E_FRAME_TOO_LARGE"];
/**
 * Failures that mean the cluster is gone or going (no reply at all, or a drain): a slot
 * that gets one waits before its next send, RETRY_MIN_MS doubling to RETRY_MAX_MS, so a
 * dead cluster costs a few requests a second instead of thousands.
 */
export const BACKOFF_CODES = ["E_CONNECTION", "E_SHUTTING_DOWN"];
export const RETRY_MIN_MS = 10;
export const RETRY_MAX_MS = 1000;
/** With no reply but BACKOFF_CODES for this long, the cluster is taken for gone and the run stops. */
export const GIVE_UP_MS = 5000;

/** A running total, for the progress display. */
export interface LoadProgress {
  elapsedMs: number;
  completed: number;
  failed: number;
  retried: number;
}

export interface LoadResult {
  /** Wall-clock start (epoch ms). */
  startedAt: number;
  /** From the first request sent to the last reply. */
  elapsedMs: number;
  /** Requests answered `ok: true`. */
  completed: number;
  /** Requests that ended in an error: a reply's code, or E_CONNECTION when no reply came. */
  errors: Record<string, number>;
  /** Requests whose reply says they took more than one attempt (meta.attempts > 1). */
  retried: number;
  /** Attempts beyond the first, summed over every request. */
  extraAttempts: number;
  /** Latency of the `ok` replies, in microseconds. */
  histogram: Histogram;
  /** Set when the run stopped early because the cluster stayed unreachable for GIVE_UP_MS. */
  gaveUp?: string;
}

export interface LoadRun {
  /** Resolves once sending has stopped and every request sent has settled. */
  readonly done: Promise<LoadResult>;
  progress(): LoadProgress;
  /** Stops sending; the same as aborting `signal`. */
  stop(): void;
}

/** 1 µs to 1 hour: enough for any reply, at 3 significant digits. */
export { newLatencyHistogram } from "./histogram.js";

export function startLoad(options: LoadOptions): LoadRun {
  checkOptions(options);
  return new Generator(options);
}

class Generator implements LoadRun {
  readonly done: Promise<LoadResult>;
  readonly #options: LoadOptions;
  readonly #histogram = newLatencyHistogram();
  readonly #errors: Record<string, number> = {};
  readonly #clients: Client[];
  #sent = 0;
  #completed = 0;
  #failed = 0;
  #retried = 0;
  #extraAttempts = 0;
  #startedAt = 0;
  #start = 0;
  #end = 0;
  #deadline = Infinity;
  #stopped = false;
  /** performance.now() of the last reply that was not a BACKOFF_CODES failure. */
  #lastHealthy = 0;
  #gaveUp: string | undefined;

  constructor(options: LoadOptions) {
    this.#options = options;
    this.#clients = Array.from({ length: options.connections }, () => new Client({ host: options.host, port: options.port, resubmit: options.resubmit === true }));
    options.signal?.addEventListener("abort", () => this.stop(), { once: true });
    this.done = this.#run();
  }

  progress(): LoadProgress {
    const elapsedMs = this.#start === 0 ? 0 : (this.#end || performance.now()) - this.#start;
    return { elapsedMs, completed: this.#completed, failed: this.#failed, retried: this.#retried };
  }

  stop(): void {
    this.#stopped = true;
  }

  async #run(): Promise<LoadResult> {
    try {
      // Connect first, so a wrong port fails once and clearly instead of as N errors.
      await Promise.all(this.#clients.map((c) => c.connect()));
      this.#startedAt = Date.now();
      this.#start = performance.now();
      this.#lastHealthy = this.#start;
      if (this.#options.durationMs !== undefined) this.#deadline = this.#start + this.#options.durationMs;
      if (this.#options.probe) await this.#probe(this.#clients[0]!);
      const slots: Promise<void>[] = [];
      for (const client of this.#clients) {
        for (let i = 0; i < this.#options.pipeline; i++) slots.push(this.#slot(client));
      }
      await Promise.all(slots);
      this.#end = performance.now();
    } finally {
      await Promise.all(this.#clients.map((c) => c.close()));
    }
    return {
      startedAt: this.#startedAt,
      elapsedMs: this.#end - this.#start,
      completed: this.#completed,
      errors: { ...this.#errors },
      retried: this.#retried,
      extraAttempts: this.#extraAttempts,
      histogram: this.#histogram,
      ...(this.#gaveUp ? { gaveUp: this.#gaveUp } : {}),
    };
  }

  /** One request alone; throws its error when every other request would fail the same way. */
  async #probe(client: Client): Promise<void> {
    this.#sent++;
    const t0 = performance.now();
    const reply = await client.call(this.#options.handler, this.#options.payload, this.#runOptions());
    const code = this.#record(t0, reply.ok ? undefined : (reply.error?.code ?? "E_UNKNOWN"), reply.meta?.attempts ?? 1);
    if (code !== undefined && PROBE_FATAL.includes(code)) throw errorFromWire(reply.error!);
  }

  #runOptions(): { timeoutMs?: number } {
    return this.#options.timeoutMs === undefined ? {} : { timeoutMs: this.#options.timeoutMs };
  }

  #more(): boolean {
    if (this.#stopped) return false;
    if (performance.now() - this.#lastHealthy > GIVE_UP_MS) {
      this.#gaveUp ??= `no reply but ${BACKOFF_CODES.join(" or ")} for ${GIVE_UP_MS / 1000} s: the cluster is gone; stopped sending`;
      return false;
    }
    if (this.#options.requests !== undefined) return this.#sent < this.#options.requests;
    return performance.now() < this.#deadline;
  }

  /** One pipeline slot: send, wait for the reply, record it, send the next. */
  async #slot(client: Client): Promise<void> {
    const { handler, payload } = this.#options;
    const runOptions = this.#runOptions();
    let backoffMs = 0;
    while (this.#more()) {
      this.#sent++;
      const t0 = performance.now();
      let code: string | undefined;
      let attempts = 1;
      try {
        const reply = await client.call(handler, payload, runOptions);
        attempts = reply.meta?.attempts ?? 1;
        if (!reply.ok) code = reply.error?.code ?? "E_UNKNOWN";
      } catch (err) {
        // No reply at all: the connection went (the client replaces it on the next call).
        code = (err as { code?: string }).code ?? "E_CONNECTION";
      }
      this.#record(t0, code, attempts);
      if (code === undefined || !BACKOFF_CODES.includes(code)) {
        backoffMs = 0;
        continue;
      }
      backoffMs = Math.min(RETRY_MAX_MS, Math.max(RETRY_MIN_MS, backoffMs * 2));
      await sleep(Math.max(0, Math.min(backoffMs, this.#deadline - performance.now())));
    }
  }

  /** Counts one request's outcome; `t0` is when it was sent. Returns its error code, if any. */
  #record(t0: number, code: string | undefined, attempts: number): string | undefined {
    const now = performance.now();
    if (code === undefined || !BACKOFF_CODES.includes(code)) this.#lastHealthy = now;
    if (code === undefined) {
      this.#completed++;
      this.#histogram.recordValue(Math.max(1, Math.round((now - t0) * 1000)));
    } else {
      this.#failed++;
      this.#errors[code] = (this.#errors[code] ?? 0) + 1;
    }
    if (attempts > 1) {
      this.#retried++;
      this.#extraAttempts += attempts - 1;
      this.#options.onRetried?.(now, attempts);
    }
    return code;
  }
}

function checkOptions(o: LoadOptions): void {
  const positive = (value: number | undefined, name: string) => {
    if (value !== undefined && !(Number.isInteger(value) && value > 0)) {
      throw new InvalidOptionError(`${name} must be a positive integer, got ${describeValue(value)}`);
    }
  };
  positive(o.connections, "connections");
  positive(o.pipeline, "pipeline");
  positive(o.requests, "requests");
  positive(o.timeoutMs, "timeoutMs");
  if (o.durationMs !== undefined && !(Number.isFinite(o.durationMs) && o.durationMs > 0)) {
    throw new InvalidOptionError(`duration must be a positive number of milliseconds, got ${JSON.stringify(o.durationMs)}`);
  }
  if ((o.durationMs === undefined) === (o.requests === undefined)) {
    throw new InvalidOptionError("give exactly one of duration and requests");
  }
}
