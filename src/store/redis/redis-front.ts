/**
 * The accepting side of a host that shares a queue through Redis: a request from this
 * host's fronts goes onto the shared queue (any host's node may run it), and its reply
 * comes back on this host's reply stream. Cancels and deadlines are decided here and
 * written to Redis, which tells the host running the request to abort it.
 *
 * While Redis cannot be reached, new requests answer E_UNAVAILABLE at once: the command
 * connection has no offline queue, so nothing waits for a reconnect.
 */
import type { Logger } from "pino";
import {
  CancelledError,
  type CrewError,
  errorFromWire,
  IdempotencyConflictError,
  OverloadedError,
  ShuttingDownError,
  TimeoutError,
  UnavailableError,
  UnknownHandlerError,
} from "../../errors.js";
import type { SubmitRequest } from "../../primary/dispatcher.js";
import type { HandlerRegistry } from "../../primary/handler-registry.js";
import { type DoneCallback, Job, type Outcome } from "../../primary/job.js";
import type { ClusterObserver } from "../../primary/observer.js";
import type { RequestSink } from "../keyed.js";
import type { SharedQueue, StoredReply } from "./shared-queue.js";

export interface RedisFrontDeps {
  queue: SharedQueue;
  registry: HandlerRegistry;
  host: string;
  /** True while the command connection to Redis is up. */
  connected: () => boolean;
  observer: () => ClusterObserver;
  log: Logger;
}

export class RedisFront implements RequestSink {
  readonly #d: RedisFrontDeps;
  /** Request id in Redis → the local requests waiting for its reply (several when joined by key). */
  readonly #waiting = new Map<string, Job[]>();
  #next = 0;
  readonly #epoch = Date.now().toString(36);
  #draining = false;
  /** Set once this host lost its id (retire()): every request is refused with it. */
  #retired: CrewError | null = null;
  #idle: Array<() => void> = [];

  constructor(deps: RedisFrontDeps) {
    this.#d = deps;
  }

  /** Requests accepted here and not answered yet. */
  get active(): number {
    let n = 0;
    for (const jobs of this.#waiting.values()) n += jobs.length;
    return n;
  }

  submit(req: SubmitRequest, done: DoneCallback): Job | null {
    const spec = this.#d.registry.get(req.handler);
    if (this.#retired) return this.#refuse(req.handler, done, this.#retired);
    if (this.#draining) return this.#refuse(req.handler, done, new ShuttingDownError("the host is shutting down"));
    if (!spec) return this.#refuse(req.handler, done, new UnknownHandlerError(`no handler named ${JSON.stringify(req.handler)}`));
    if (!this.#d.connected()) return this.#refuse(req.handler, done, new UnavailableError("Redis cannot be reached: retry later"));
    const requestId = `${this.#d.host}-${this.#epoch}-${++this.#next}`;
    const timeoutMs = req.timeoutMs ?? spec.timeoutMs;
    const job = new Job(requestId, spec, undefined, req.key, req.priority ?? 0, timeoutMs, done);
    job.idempotencyKey = req.idempotencyKey;
    job.state = "running";
    job.deadline = setTimeout(() => this.#giveUp(job, new TimeoutError(`deadline of ${timeoutMs} ms passed`)), timeoutMs);
    this.#wait(requestId, job);
    const enqueued = this.#d.queue.enqueue({
      requestId,
      handler: spec.name,
      payloadJson: req.payloadJson ?? JSON.stringify(req.payload ?? null),
      priority: req.priority ?? 0,
      deadline: Date.now() + timeoutMs,
      idempotencyKey: req.idempotencyKey,
    });
    enqueued.then(
      (res) => {
        if (res.kind === "queued") return;
        this.#unwait(requestId, job);
        if (res.kind === "full") this.#answer(job, fail(job, new OverloadedError("the shared queue is full: retry later")));
        else if (res.kind === "conflict") this.#answer(job, fail(job, new IdempotencyConflictError(`the key is in use by request ${res.requestId} with another handler or payload`)));
        else if (res.kind === "replay") this.#answer(job, fromStored(job, res.reply, true));
        else this.#wait(res.requestId, job);
      },
      (err: unknown) => {
        this.#unwait(requestId, job);
        this.#answer(job, fail(job, new UnavailableError(`Redis cannot be reached: ${(err as Error).message}`)));
      },
    );
    return job;
  }

  cancel(job: Job, error: CrewError = new CancelledError("cancelled by the client")): void {
    this.#giveUp(job, error);
  }

  /** The caller's connection is gone: a request without a key is cancelled; one with a key runs on, for the client to come back. */
  hangUp(job: Job): void {
    if (job.idempotencyKey === undefined) this.#giveUp(job, new CancelledError("client disconnected"));
    else this.#unwaitLocal(job);
  }

  noteRefused(handler: string, code: string): void {
    this.#d.observer().requestRefused?.(handler, code);
  }

  /**
   * The shared queue's cap is kept in Redis (enqueue answers "full"), and a request there
   * may already run on another host: this host sheds and holds nothing of it.
   */
  get queueFull(): boolean {
    return false;
  }

  hold(): void {}

  release(): void {}

  shed(): boolean {
    return false;
  }

  /** A reply from this host's stream: answers every local request waiting for it. */
  deliver(requestId: string, reply: StoredReply): void {
    const jobs = this.#waiting.get(requestId);
    if (!jobs) return; // answered already (cancel, deadline), or accepted before a restart
    this.#waiting.delete(requestId);
    for (const job of jobs) this.#answer(job, fromStored(job, reply, false));
  }

  /** Stops accepting; resolves when every accepted request has answered or after `timeoutMs`, then answers the rest. */
  async drain(timeoutMs: number): Promise<void> {
    this.#draining = true;
    if (this.active > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, timeoutMs);
        this.#idle.push(() => (clearTimeout(timer), resolve()));
      });
    }
    for (const jobs of [...this.#waiting.values()]) for (const job of jobs) this.#giveUp(job, new ShuttingDownError("the host shut down before the request answered"));
  }

  /**
   * This host lost its id to another (redis-host.ts): its reply stream is the other's now,
   * so no reply reaches it. Refuses every request from now on with `error`, and answers
   * it here to those waiting. Only here: each runs on where it is, and a keyed one's
   * result is kept in Redis for its client to ask another host with the same key.
   */
  retire(error: CrewError): void {
    this.#retired = error;
    const waiting = [...this.#waiting.values()].flat();
    this.#waiting.clear();
    for (const job of waiting) this.#answer(job, fail(job, error));
  }

  /**
   * Cancel or deadline: the shared request is answered with `error` in Redis (which tells
   * its running host to abort), unless its result got there first: then that result is on
   * its way here and answers instead. A request joined by key only lets go of this caller.
   */
  #giveUp(job: Job, error: CrewError): void {
    if (job.state === "done") return;
    const shared = this.#waiting.get(job.requestId);
    if (!shared?.includes(job) || !this.#d.connected()) {
      this.#unwait(job.requestId, job);
      return this.#answer(job, fail(job, error));
    }
    const stored: StoredReply = { ok: false, error: error.toJSON(), meta: { ...job.meta(), host: this.#d.host } };
    void this.#answerGivenUp(job.requestId, shared, error, stored);
  }

  /**
   * Answers `error` in Redis, then here to every caller waiting for `requestId`; unless the
   * result got there first. That result is on its way on this host's reply stream, but the
   * entry can be lost (trimmed past MAXLEN, a Redis failover): it is read from the request
   * too, and deliver() answers once, whichever comes first. Waiting for the stream alone
   * left such a client with no reply at all, past its deadline.
   */
  async #answerGivenUp(requestId: string, shared: Job[], error: CrewError, stored: StoredReply): Promise<void> {
    try {
      if ((await this.#d.queue.finish(requestId, null, stored, false)) === "already") {
        const reply = await this.#d.queue.reply(requestId);
        if (reply) return this.deliver(requestId, reply);
      }
    } catch {
      // Redis refused the write or the read: the error is the answer.
    }
    this.#waiting.delete(requestId);
    for (const j of shared) this.#answer(j, fail(j, error));
  }

  /** Stops waiting for a keyed request's reply here; it runs on, and stays in Redis for the key. */
  #unwaitLocal(job: Job): void {
    if (job.state === "done") return;
    for (const [id, jobs] of this.#waiting) if (jobs.includes(job)) this.#unwait(id, job);
    job.state = "done";
    if (job.deadline) clearTimeout(job.deadline);
    if (this.#idle.length > 0 && this.active === 0) for (const resolve of this.#idle.splice(0)) resolve();
  }

  #wait(requestId: string, job: Job): void {
    const jobs = this.#waiting.get(requestId);
    if (jobs) jobs.push(job);
    else this.#waiting.set(requestId, [job]);
  }

  #unwait(requestId: string, job: Job): void {
    const jobs = this.#waiting.get(requestId);
    if (!jobs) return;
    const rest = jobs.filter((j) => j !== job);
    if (rest.length > 0) this.#waiting.set(requestId, rest);
    else this.#waiting.delete(requestId);
  }

  #answer(job: Job, outcome: Outcome): void {
    if (job.state === "done") return;
    job.state = "done";
    if (job.deadline) clearTimeout(job.deadline);
    this.#d.observer().requestDone?.(job, outcome);
    try {
      job.done(outcome);
    } catch (err) {
      this.#d.log.error({ err, requestId: job.requestId }, "a reply callback threw");
    }
    if (this.#idle.length > 0 && this.active === 0) for (const resolve of this.#idle.splice(0)) resolve();
  }

  #refuse(handler: string, done: DoneCallback, error: CrewError): null {
    this.noteRefused(handler, error.code);
    done({ ok: false, error, meta: { node: null, attempts: 0, ms: 0 } });
    return null;
  }
}

function fail(job: Job, error: CrewError): Outcome {
  return { ok: false, error, meta: job.meta() };
}

/** A stored reply as this host's answer: `ms` is measured here, from acceptance. */
function fromStored(job: Job, reply: StoredReply, replayed: boolean): Outcome {
  const meta = { ...reply.meta, ms: job.meta().ms, ...(replayed ? { replayed: true } : {}) };
  return reply.ok ? { ok: true, json: reply.json, meta } : { ok: false, error: errorFromWire(reply.error), meta };
}
