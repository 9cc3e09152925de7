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
import type { Histogram } from "hdr-histogram-js";
import { InvalidOptionError } from "../errors.js";
import { newLatencyHistogram } from "./histogram.js";
import { Client } from "../protocol/client.js";

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
}

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

  constructor(options: LoadOptions) {
    this.#options = options;
    this.#clients = Array.from({ length: options.connections }, () => new Client({ host: options.host, port: options.port }));
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
      if (this.#options.durationMs !== undefined) this.#deadline = this.#start + this.#options.durationMs;
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
    };
  }

  #more(): boolean {
    if (this.#stopped) return false;
    if (this.#options.requests !== undefined) return this.#sent < this.#options.requests;
    return performance.now() < this.#deadline;
  }

  /** One pipeline slot: send, wait for the reply, record it, send the next. */
  async #slot(client: Client): Promise<void> {
    const { handler, payload, timeoutMs, onRetried } = this.#options;
    const runOptions = timeoutMs === undefined ? {} : { timeoutMs };
    while (this.#more()) {
      this.#sent++;
      const t0 = performance.now();
      let code: string | undefined;
      let attempts = 1;
      try {
        const reply = await client.call(handler, payload, runOptions);
        attempts = reply.meta?.attempts ?? 1;
        if (reply.ok) this.#histogram.recordValue(Math.max(1, Math.round((performance.now() - t0) * 1000)));
        else code = reply.error?.code ?? "E_UNKNOWN";
      } catch (err) {
        // No reply at all: the connection went (the client replaces it on the next call).
        code = (err as { code?: string }).code ?? "E_CONNECTION";
      }
      if (code === undefined) this.#completed++;
      else {
        this.#failed++;
        this.#errors[code] = (this.#errors[code] ?? 0) + 1;
      }
      if (attempts > 1) {
        this.#retried++;
        this.#extraAttempts += attempts - 1;
        onRetried?.(performance.now(), attempts);
      }
    }
  }
}

function checkOptions(o: LoadOptions): void {
  const positive = (value: number | undefined, name: string) => {
    if (value !== undefined && !(Number.isInteger(value) && value > 0)) {
      throw new InvalidOptionError(`${name} must be a positive integer, got ${JSON.stringify(value)}`);
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
