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
 * One HTTP connection's unanswered requests, hung up together when its socket closes;
 * a client of the queue's fair sharing (see ClientShares). A request leaves the set when
 * it answers, so no listener or closure is made per request.
 */
export class HttpClient implements ShareHolder {
  readonly #jobs = new Set<Job>();
  readonly #shares: ClientShares;
  readonly #shed: (job: Job) => boolean;
  readonly #hangUp: (job: Job) => void;

  constructor(shares: ClientShares, shed: (job: Job) => boolean, hangUp: (job: Job) => void) {
    this.#shares = shares;
    this.#shed = shed;
    this.#hangUp = hangUp;
  }

  get inflight(): number {
    return this.#jobs.size;
  }

  add(job: Job): void {
    if (this.#jobs.size === 0) this.#shares.started(this);
    this.#jobs.add(job);
  }

  remove(job: Job): void {
    if (this.#jobs.delete(job) && this.#jobs.size === 0) this.#shares.stopped(this);
  }

  /** Gives up the newest of its requests still waiting, to a client under its share of a full queue. */
  evictOne(): boolean {
    let newest: Job | null = null;
    for (const job of this.#jobs) if (job.state === "queued" || job.state === "held") newest = job;
    return newest !== null && this.#shed(newest);
  }

  /** The socket closed: every request still unanswered is hung up; returns them. */
  closed(): Job[] {
    const jobs = [...this.#jobs];
    for (const job of jobs) this.remove(job);
    for (const job of jobs) this.#hangUp(job);
    return jobs;
  }
}

/** A socket's HttpClient rides on the socket itself (a WeakMap lookup cost ~3% of the primary per request). */
const CLIENT = Symbol("crew.httpClient");

/** The HttpClient of a socket, made on first use with `make`. */
export function clientOf(socket: Socket, log: Logger, make: () => HttpClient): HttpClient {
  const holder = socket as Socket & { [CLIENT]?: HttpClient };
  let client = holder[CLIENT];
  if (!client) {
    const made = make();
    holder[CLIENT] = made;
    socket.once("close", () => {
      const jobs = made.closed();
      if (jobs.length > 0) {
        const requestIds = jobs.slice(0, 20).map((job) => job.requestId);
        log.debug({ remote: socket.remoteAddress, cancelled: jobs.length, requestId: requestIds[0], requestIds }, "client disconnected: cancelling its requests");
      }
    });
    client = made;
  }
  return client;
}
