/**
 * What the HTTP front tracks per connection, beside Node's own: a client's FIN (a
 * half-close or a hang-up) and its unanswered requests, with their cancels.
 */
import type { ServerResponse } from "node:http";
import type { Socket } from "node:net";
import type { Logger } from "pino";
import type { ClientShares, ShareHolder } from "../primary/admission.js";
import type { Job } from "../primary/job.js";

/** After a client's FIN, a pending response is probed with 102 Processing now and after these delays (see onPeerEnd). */
const PROBE_AGAIN_MS = [100, 1_000];

/**
 * The client sent FIN. On the wire a half-close and a hang-up look the same: a response
 * still to come gets a `102 Processing` first (every HTTP/1.1 client must skip 1xx), so
 * a client that has really gone answers with a reset, which closes the socket and
 * cancels its requests; one that half-closed waits for its responses. A response
 * already streaming (SSE) cannot take a 1xx: its viewer has left, and the socket goes.
 */
export function onPeerEnd(socket: Socket): void {
  const current = (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage;
  if (!current) return; // idle: Node ends the socket
  if (current.headersSent) return void socket.destroy();
  // The reset comes back after the first write, and only a later write sees it: probe
  // again after a round trip on a fast link, and after one on a slow one.
  const probe = (): void => {
    if (!socket.destroyed && !current.headersSent) current.writeProcessing();
  };
  probe();
  for (const ms of PROBE_AGAIN_MS) setTimeout(probe, ms).unref();
}

/**
 * One HTTP connection's unanswered requests and their cancels, run by one 'close'
 * listener per socket; a client of the queue's fair sharing (see ClientShares).
 */
export class HttpClient implements ShareHolder {
  readonly #cancels = new Map<Job, () => void>();
  readonly #shares: ClientShares;
  readonly #shed: (job: Job) => boolean;

  constructor(shares: ClientShares, shed: (job: Job) => boolean) {
    this.#shares = shares;
    this.#shed = shed;
  }

  get inflight(): number {
    return this.#cancels.size;
  }

  add(job: Job, cancel: () => void): void {
    if (this.#cancels.size === 0) this.#shares.started(this);
    this.#cancels.set(job, cancel);
  }

  remove(job: Job): void {
    if (this.#cancels.delete(job) && this.#cancels.size === 0) this.#shares.stopped(this);
  }

  /** Gives up the newest of its requests still waiting, to a client under its share of a full queue. */
  evictOne(): boolean {
    let newest: Job | null = null;
    for (const job of this.#cancels.keys()) if (job.state === "queued" || job.state === "held") newest = job;
    return newest !== null && this.#shed(newest);
  }

  /** The socket closed: every request still unanswered is cancelled. */
  closed(): number {
    const cancels = [...this.#cancels.values()];
    for (const job of [...this.#cancels.keys()]) this.remove(job);
    for (const cancel of cancels) cancel();
    return cancels.length;
  }
}

const clients = new WeakMap<Socket, HttpClient>();

/** The HttpClient of a socket, made on first use with `make`. */
export function clientOf(socket: Socket, log: Logger, make: () => HttpClient): HttpClient {
  let client = clients.get(socket);
  if (!client) {
    const made = make();
    clients.set(socket, made);
    socket.once("close", () => {
      const cancelled = made.closed();
      if (cancelled > 0) log.debug({ remote: socket.remoteAddress, cancelled }, "client disconnected: cancelling its requests");
    });
    client = made;
  }
  return client;
}
