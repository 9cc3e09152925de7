/**
 * Idempotency keys in front of the dispatcher (DESIGN.md, "Idempotency keys and the
 * journal"). A request without a key goes straight through. One with a key:
 *
 *   - joins the unanswered request holding that key in this primary (same handler and
 *     payload): every joined caller gets the one reply, the work runs once;
 *   - gets the kept reply at once, with `meta.replayed: true`, when the key answered
 *     within the store's TTL;
 *   - answers E_IDEMPOTENCY_CONFLICT for another handler or payload under the key;
 *   - otherwise is admitted by the store and submitted, with hooks that let the store
 *     count its attempts and keep its checkpoints before they are acknowledged.
 *
 * A keyed request's reply leaves only once the store has kept it (write-ahead); a
 * disconnect does not cancel it (`hangUp`), an explicit cancel does.
 */
import { hash } from "node:crypto";
import type { Logger } from "pino";
import {
  CancelledError,
  type CrewError,
  errorFromWire,
  IdempotencyConflictError,
  OverloadedError,
  TimeoutError,
} from "../errors.js";
import type { Dispatcher, SubmitRequest } from "../primary/dispatcher.js";
import type { DoneCallback, Durability, Job, Outcome } from "../primary/job.js";
import { newRequestId } from "../primary/request-id.js";
import { type MaybePromise, type NewRequest, type OpenRequest, type RequestStore, type StoredReply, WriteKeptError } from "./store.js";

/** What the receivers and `cluster.run` submit through: the dispatcher's entry, with keys. */
export interface RequestSink extends Pick<Dispatcher, "queueFull" | "hold" | "release" | "shed"> {
  submit(req: SubmitRequest, done: DoneCallback): Job | null;
  /** Explicit cancel: the request answers E_CANCELLED (a keyed one too). */
  cancel(job: Job): void;
  /** The caller's connection is gone: cancels a request without a key; one with a key runs on. */
  hangUp(job: Job): void;
  noteRefused(handler: string, code: string): void;
}

export interface KeyedStats {
  /** Runs answered with a kept reply. */
  replayed: number;
  /** Runs that joined an unanswered request with their key. */
  joined: number;
}

/** One keyed request held by this primary, and the callers waiting for its reply. */
interface Live {
  key: string;
  fingerprint: string;
  job: Job | null;
  callers: DoneCallback[];
  fence: string | number;
  /** Queued again from the store after a restart: even a refusal is kept as its reply. */
  recovered: boolean;
}

export class KeyedRequests implements RequestSink {
  readonly #dispatcher: Dispatcher;
  readonly #store: RequestStore;
  readonly #log: Logger;
  /** The handler's default deadline, ms, for requests that give none. */
  readonly #timeoutOf: (handler: string) => number;
  readonly #live = new Map<string, Live>();
  readonly stats: KeyedStats = { replayed: 0, joined: 0 };
  readonly #durability: Durability;

  constructor(deps: { dispatcher: Dispatcher; store: RequestStore; log: Logger; timeoutOf: (handler: string) => number }) {
    this.#dispatcher = deps.dispatcher;
    this.#store = deps.store;
    this.#log = deps.log;
    this.#timeoutOf = deps.timeoutOf;
    this.#durability = {
      attemptStarted: (job) => this.#attemptStarted(job),
      checkpoint: (job, json) => this.#checkpoint(job, json),
    };
  }

  get store(): RequestStore {
    return this.#store;
  }

  submit(req: SubmitRequest, done: DoneCallback): Job | null {
    const key = req.idempotencyKey;
    if (key === undefined) return this.#dispatcher.submit(req, done);
    // Compared as text, byte for byte: the JSON a front received, or the payload as JSON.stringify writes it.
    const payloadJson = req.payloadJson ?? (req.payload === undefined ? null : JSON.stringify(req.payload));
    const fingerprint = fingerprintOf(req.handler, payloadJson);
    const live = this.#live.get(key);
    if (live) {
      if (live.fingerprint !== fingerprint) return this.#conflict(req, done);
      live.callers.push(done);
      this.stats.joined++;
      return live.job;
    }
    const timeoutMs = req.timeoutMs ?? this.#timeoutOf(req.handler);
    const record: NewRequest = {
      idempotencyKey: key,
      requestId: newRequestId(),
      handler: req.handler,
      payloadJson,
      fingerprint,
      priority: req.priority ?? 0,
      timeoutMs,
      deadline: Date.now() + timeoutMs,
    };
    const admitted = this.#store.admit(record);
    if (!(admitted instanceof Promise)) return this.#admitted(req, record, admitted, done);
    // A store that answers later (Redis): the caller gets its reply through `done`, but
    // holds no job to cancel while the store decides.
    admitted.then(
      (result) => void this.#admitted(req, record, result, done),
      (err: unknown) => done(refusal(new OverloadedError(`the store could not admit the request: ${(err as Error).message}`))),
    );
    return null;
  }

  cancel(job: Job): void {
    this.#dispatcher.cancel(job);
  }

  get queueFull(): boolean {
    return this.#dispatcher.queueFull;
  }

  hold(jobs: Iterable<Job>): void {
    this.#dispatcher.hold(jobs);
  }

  release(jobs: Iterable<Job>): void {
    this.#dispatcher.release(jobs);
  }

  shed(job: Job, error: CrewError): boolean {
    return this.#dispatcher.shed(job, error);
  }

  hangUp(job: Job): void {
    if (job.idempotencyKey === undefined) this.#dispatcher.cancel(job, new CancelledError("client disconnected"));
  }

  noteRefused(handler: string, code: string): void {
    this.#dispatcher.noteRefused(handler, code);
  }

  /**
   * Queues again the unanswered requests a previous primary left in the store; those
   * whose deadline passed while it was down answer E_TIMEOUT, kept for whoever comes.
   */
  recover(open: readonly OpenRequest[]): void {
    const now = Date.now();
    for (const rec of open) {
      const live: Live = { key: rec.idempotencyKey, fingerprint: rec.fingerprint, job: null, callers: [], fence: rec.attempts, recovered: true };
      this.#live.set(rec.idempotencyKey, live);
      const left = rec.deadline - now;
      if (left <= 0) {
        const error = new TimeoutError(`deadline of ${rec.timeoutMs} ms passed while the primary was down`);
        this.#answered(live, { ok: false, error, meta: { node: null, attempts: rec.attempts, ms: rec.timeoutMs } });
        continue;
      }
      const req: SubmitRequest = {
        handler: rec.handler,
        payloadJson: rec.payloadJson ?? undefined,
        idempotencyKey: rec.idempotencyKey,
        requestId: rec.requestId || undefined,
        priority: rec.priority,
        timeoutMs: left,
        resume: { attempts: rec.attempts, checkpoint: rec.checkpoint, timeoutMs: rec.timeoutMs },
      };
      this.#submitLive(live, req, left);
    }
  }

  #admitted(req: SubmitRequest, record: NewRequest, result: Awaited<ReturnType<RequestStore["admit"]>>, done: DoneCallback): Job | null {
    switch (result.kind) {
      case "accepted": {
        const live: Live = { key: record.idempotencyKey, fingerprint: record.fingerprint, job: null, callers: [done], fence: 0, recovered: false };
        this.#live.set(live.key, live);
        return this.#submitLive(live, req, record.timeoutMs, record.requestId);
      }
      case "replay": {
        if (result.fingerprint !== record.fingerprint) return this.#conflict(req, done);
        this.stats.replayed++;
        done(toOutcome(result.reply, true));
        return null;
      }
      case "open": {
        if (result.fingerprint !== record.fingerprint) return this.#conflict(req, done);
        this.stats.joined++;
        if (this.#store.follow) this.#store.follow(record.idempotencyKey, (reply) => done(toOutcome(reply, false)));
        else done(refusal(new OverloadedError("the key's request is held by another primary and this store cannot follow it")));
        return null;
      }
      case "full":
        return this.#refuse(req, done, new OverloadedError(`${result.limit} idempotency keys are held (open or kept for replay): retry later`));
    }
  }

  /** Submits `req` with the store's hooks, its deadline (ms) and its request id: one copy of the request, not two. */
  #submitLive(live: Live, req: SubmitRequest, timeoutMs: number, requestId = req.requestId): Job | null {
    const job = this.#dispatcher.submit({ ...req, timeoutMs, requestId, durable: this.#durability }, (outcome) => this.#answered(live, outcome));
    // Refused at the door: #answered has run already and let the key go.
    if (job !== null && this.#live.get(live.key) === live) live.job = job;
    return job;
  }

  /** The request answered: keep the reply, then hand it to every caller (write-ahead). */
  #answered(live: Live, outcome: Outcome): void {
    const refusedAtDoor = live.job === null && !live.recovered;
    const code = outcome.ok ? "ok" : outcome.error.code;
    if (refusedAtDoor || !KEPT_CODES.has(code) && (code !== "E_SHUTTING_DOWN" || this.#store.kind === "memory")) {
      // Nothing to replay: the work did not finish, and the key may run again.
      this.#live.delete(live.key);
      this.#store.release(live.key);
      return this.#deliver(live, outcome);
    }
    if (code === "E_SHUTTING_DOWN") {
      // A durable store keeps the request open: the next primary on it runs it again.
      this.#live.delete(live.key);
      return this.#deliver(live, outcome);
    }
    const kept = this.#store.finish(live.key, live.fence, toStored(outcome));
    const deliver = (): void => {
      if (this.#live.get(live.key) === live) this.#live.delete(live.key);
      this.#deliver(live, outcome);
    };
    if (!(kept instanceof Promise)) return deliver();
    kept.then(deliver, (err: unknown) => {
      this.#log[level(err)]({ err, key: live.key }, "the store could not keep a reply: answering without it");
      deliver();
    });
  }

  #deliver(live: Live, outcome: Outcome): void {
    for (const done of live.callers.splice(0)) {
      try {
        done(outcome);
      } catch (err) {
        this.#log.error({ err, key: live.key }, "a reply callback threw");
      }
    }
  }

  #attemptStarted(job: Job): void {
    const live = this.#live.get(job.idempotencyKey!);
    if (!live) return;
    const fence = this.#store.attemptStarted(live.key, job.attempts);
    if (fence instanceof Promise) fence.then((f) => (live.fence = f), () => {});
    else live.fence = fence;
  }

  /**
   * Keeps a checkpoint in the store before the node's `ctx.checkpoint()` resolves. A store
   * that fails to (a journal commit failed: a full disk, an I/O error) is logged, and the
   * attempt goes on from the checkpoint the primary holds in memory, as a reply goes out
   * without it (#answered): left unacknowledged, the handler would wait at its `await
   * ctx.checkpoint()` until its deadline.
   */
  #checkpoint(job: Job, json: string): MaybePromise<boolean> {
    const live = this.#live.get(job.idempotencyKey!);
    if (!live) return false;
    const kept = this.#store.checkpoint(live.key, live.fence, json);
    if (!(kept instanceof Promise)) return kept;
    return kept.catch((err: unknown) => {
      this.#log[level(err)]({ err, key: live.key, requestId: job.requestId }, "the store could not keep a checkpoint: going on without it");
      return true;
    });
  }

  #conflict(req: SubmitRequest, done: DoneCallback): null {
    return this.#refuse(req, done, new IdempotencyConflictError(`idempotency key ${JSON.stringify(req.idempotencyKey!.slice(0, 64))} is in use by a request with another handler or payload`));
  }

  #refuse(req: SubmitRequest, done: DoneCallback, error: CrewError): null {
    this.#dispatcher.noteRefused(req.handler, error.code);
    done(refusal(error));
    return null;
  }
}

/**
 * The answers kept for replay: what the work came to. The others (cancelled, shed from a
 * full queue, shutting down, …) free the key, and the same key runs again.
 */
const KEPT_CODES = new Set(["ok", "E_HANDLER", "E_CRASHED", "E_TIMEOUT", "E_UNKNOWN_HANDLER", "E_NO_NODE"]);

/**
 * sha256 of handler and payload text, hex: what "the same work" means for a key. The
 * one-shot crypto.hash (Node 20.12+) costs a fraction of a Hash object for the small
 * payloads most requests carry; the digest is the same bytes as before.
 */
export function fingerprintOf(handler: string, payloadJson: string | null): string {
  return hash("sha256", `${handler}\n${payloadJson ?? ""}`, "hex");
}

function refusal(error: CrewError): Outcome {
  return { ok: false, error, meta: { node: null, attempts: 0, ms: 0 } };
}

function toStored(outcome: Outcome): StoredReply {
  return outcome.ok ? { ok: true, json: outcome.json, meta: outcome.meta } : { ok: false, error: outcome.error.toJSON(), meta: outcome.meta };
}

function toOutcome(reply: StoredReply, replayed: boolean): Outcome {
  const meta = replayed ? { ...reply.meta, replayed: true } : reply.meta;
  return reply.ok ? { ok: true, json: reply.json, meta } : { ok: false, error: errorFromWire(reply.error), meta };
}

/** How loud a store's refusal is: an error, unless the store reported its outage itself. */
function level(err: unknown): "error" | "debug" {
  return err instanceof WriteKeptError ? "debug" : "error";
}
