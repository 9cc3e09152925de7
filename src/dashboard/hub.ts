/**
 * The dashboard's live stream: server-sent events (the WHATWG EventSource format) over
 * one long GET. One message a second (`tick`: the cluster's snapshot, plus the chart
 * samples and timeline entries each viewer has not seen yet), and timeline entries
 * within ~100 ms of happening (`events`).
 *
 * Bounded per connection: a message is written only while the response holds less than
 * `maxBufferedBytes` unsent; a viewer that reads slowly skips messages, and catches up in
 * the next one it gets (samples and entries are numbered, so it gets all it missed that
 * the rings still hold: coalesced, never buffered). A viewer behind for `staleMs` is
 * dropped (its EventSource reconnects and starts afresh). At most `maxClients` streams:
 * past that, 503 E_OVERLOADED. The snapshot is built only while someone watches.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Logger } from "pino";
import { OverloadedError } from "../errors.js";
import type { Ring } from "./ring.js";

export interface StreamLimits {
  /** Streams open at once. */
  maxClients: number;
  /** Bytes a stream may hold unsent before its messages are skipped. */
  maxBufferedBytes: number;
  /** A stream skipping messages this long is dropped, ms. */
  staleMs: number;
  /** Time between ticks, ms. */
  tickMs: number;
  /** Longest wait between a timeline entry and its message, ms. */
  eventDelayMs: number;
}

export const DEFAULT_STREAM_LIMITS: StreamLimits = { maxClients: 16, maxBufferedBytes: 256 * 1024, staleMs: 15_000, tickMs: 1000, eventDelayMs: 100 };

/** What the hub streams: a snapshot built on demand, and two numbered rings. */
export interface StreamSource {
  snapshot(): Promise<unknown>;
  readonly series: { readonly samples: Ring<object> };
  readonly timeline: Ring<object>;
}

interface Viewer {
  res: ServerResponse;
  /** The last sample and timeline entry this viewer was sent. */
  sample: number;
  event: number;
  /** When it began skipping messages (performance.now()), 0 while it keeps up. */
  behindSince: number;
  /** Messages skipped while behind. */
  skipped: number;
}

export class StreamHub {
  readonly #source: StreamSource;
  readonly #limits: StreamLimits;
  readonly #log: Logger;
  readonly #viewers = new Set<Viewer>();
  #tickTimer: NodeJS.Timeout | null = null;
  #eventTimer: NodeJS.Timeout | null = null;
  #ticking = false;
  #closed = false;

  constructor(source: StreamSource, log: Logger, limits: Partial<StreamLimits> = {}) {
    this.#source = source;
    this.#log = log;
    this.#limits = { ...DEFAULT_STREAM_LIMITS, ...limits };
  }

  /** Open streams, and bytes each holds unsent (for tests and /v1/status readers). */
  get viewers(): Array<{ buffered: number; behind: boolean; skipped: number }> {
    return [...this.#viewers].map((v) => ({ buffered: v.res.writableLength, behind: v.behindSince !== 0, skipped: v.skipped }));
  }

  /** Serves GET /v1/events: starts a stream, or answers 503 past the cap. */
  open(req: IncomingMessage, res: ServerResponse): void {
    if (this.#closed || this.#viewers.size >= this.#limits.maxClients) {
      const error = new OverloadedError(`${this.#limits.maxClients} dashboard streams are open: close one and retry`);
      const body = JSON.stringify({ error: error.toJSON() });
      res.writeHead(503, { "content-type": "application/json; charset=utf-8", "content-length": Buffer.byteLength(body), "retry-after": "5" });
      return void res.end(body);
    }
    res.writeHead(200, { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-store", "x-accel-buffering": "no" });
    if (req.method === "HEAD") return void res.end();
    // The browser reconnects this long after a dropped stream.
    res.write("retry: 3000\n\n");
    const viewer: Viewer = { res, sample: 0, event: 0, behindSince: 0, skipped: 0 };
    this.#viewers.add(viewer);
    res.once("close", () => {
      this.#viewers.delete(viewer);
      if (this.#viewers.size === 0) this.#stopTicking();
    });
    if (!this.#ticking) this.#tick();
  }

  /** A timeline entry was added: send it within eventDelayMs, several at once. */
  notify(): void {
    if (this.#eventTimer || this.#viewers.size === 0) return;
    this.#eventTimer = setTimeout(() => {
      this.#eventTimer = null;
      for (const viewer of this.#viewers) this.#send(viewer, "events", null);
    }, this.#limits.eventDelayMs);
  }

  /** Ends every stream and stops. */
  close(): void {
    this.#closed = true;
    this.#stopTicking();
    for (const viewer of this.#viewers) viewer.res.end();
    this.#viewers.clear();
  }

  #stopTicking(): void {
    if (this.#tickTimer) clearTimeout(this.#tickTimer);
    if (this.#eventTimer) clearTimeout(this.#eventTimer);
    this.#tickTimer = this.#eventTimer = null;
    this.#ticking = false;
  }

  /** One tick: a snapshot to every viewer, then the next one tickMs after this one began. */
  async #tick(): Promise<void> {
    this.#ticking = true;
    const began = performance.now();
    let snapshot: string;
    try {
      snapshot = JSON.stringify(await this.#source.snapshot());
    } catch (err) {
      this.#log.error({ err }, "dashboard snapshot failed");
      snapshot = "null";
    }
    if (!this.#ticking) return; // the last viewer left, or close(), while the snapshot was built
    for (const viewer of this.#viewers) this.#send(viewer, "tick", snapshot);
    const wait = Math.max(0, this.#limits.tickMs - (performance.now() - began));
    this.#tickTimer = setTimeout(() => void this.#tick(), wait);
  }

  /** Writes one message unless the viewer is behind; drops a viewer behind for too long. */
  #send(viewer: Viewer, type: "tick" | "events", snapshot: string | null): void {
    const { res } = viewer;
    if (res.destroyed || res.writableEnded) return;
    if (res.writableLength > this.#limits.maxBufferedBytes) {
      const now = performance.now();
      viewer.skipped++;
      if (viewer.behindSince === 0) viewer.behindSince = now;
      else if (now - viewer.behindSince > this.#limits.staleMs) {
        this.#log.warn({ buffered: res.writableLength, skipped: viewer.skipped, staleMs: this.#limits.staleMs }, "dashboard stream dropped: the viewer does not read");
        this.#viewers.delete(viewer);
        res.destroy();
      }
      return;
    }
    viewer.behindSince = 0;
    const samples = type === "tick" ? this.#source.series.samples.since(viewer.sample) : [];
    const events = this.#source.timeline.since(viewer.event);
    if (type === "events" && events.length === 0) return;
    if (type === "tick") viewer.sample = this.#source.series.samples.last;
    viewer.event = this.#source.timeline.last;
    const data = `{"snapshot":${snapshot ?? "null"},"samples":${JSON.stringify(samples)},"events":${JSON.stringify(events)}}`;
    res.write(`event: ${type}\ndata: ${data}\n\n`);
  }
}
