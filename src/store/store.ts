/**
 * Where requests that carry an idempotency key live: their record when accepted, the
 * checkpoints of their attempts, and their reply once made. The dispatcher never sees a
 * store: `KeyedRequests` (keyed.ts) sits in front of it and talks to one of
 *
 *   - `MemoryStore` (memory.ts): replies kept in this process, lost with it (the default);
 *   - `JournalStore` (journal.ts): an SQLite file (`--journal`), which a restarted primary
 *     reads to queue again what was open and to answer what was answered;
 *   - a Redis store (issue 12): shared by several primaries.
 *
 * Every operation may answer synchronously (memory, journal: better-sqlite3 is
 * synchronous) or with a promise (Redis). Callers accept both (`MaybePromise`), so the
 * synchronous stores pay no promise on the hot path.
 *
 * Fencing: `attemptStarted` returns a fence for that attempt; `checkpoint` and `finish`
 * pass it back, and a store shared by several primaries refuses (returns false) a write
 * whose fence no longer holds the request. The single-primary stores use the attempt
 * number and never refuse.
 */
import type { WireError } from "../errors.js";
import type { ReplyMeta } from "../protocol/frames.js";

export type MaybePromise<T> = T | Promise<T>;

/** A reply as a store keeps it; `json` is the result as JSON text (never parsed by the primary). */
export type StoredReply = { ok: true; json: string; meta: ReplyMeta } | { ok: false; error: WireError; meta: ReplyMeta };

/** A keyed request as accepted: what a store must keep to run it again after a restart. */
export interface NewRequest {
  idempotencyKey: string;
  requestId: string;
  handler: string;
  /** The payload as JSON text; null when the request had none (undefined payload). */
  payloadJson: string | null;
  /** sha256 (hex) of handler and payload: two runs with one key are the same work when equal. */
  fingerprint: string;
  priority: number;
  /** The request's whole deadline, ms (its timeoutMs). */
  timeoutMs: number;
  /** Absolute deadline, epoch ms (Date.now() based: it must survive a restart). */
  deadline: number;
}

/**
 * What `admit` found for a key:
 *   accepted: the key was free; it is now this request's, run it;
 *   replay:   the key's request answered; here is its reply (compare fingerprints first);
 *   open:     the key's request is unanswered and not held by this primary (another host
 *             runs it: use `follow`); a single-primary store never answers this;
 *   full:     the store keeps its limit of keys already (E_OVERLOADED).
 */
export type AdmitResult =
  | { kind: "accepted" }
  | { kind: "replay"; fingerprint: string; reply: StoredReply }
  | { kind: "open"; fingerprint: string }
  | { kind: "full"; limit: number };

/** An unanswered request a previous primary left in the store (journal), to queue again. */
export interface OpenRequest extends NewRequest {
  /** Attempts started so far, the one cut short by the primary's death included. */
  attempts: number;
  /** The last checkpoint kept, as JSON text, or null. */
  checkpoint: string | null;
}

/** What `crew status` and GET /v1/status show of the store. */
export interface StoreStatus {
  kind: "memory" | "journal" | "redis";
  /** The journal's file, absolute; null for the others. */
  file: string | null;
  /** Bytes on disk (journal: the database and its WAL); null when not on disk. */
  sizeBytes: number | null;
  /** Keyed requests accepted and unanswered. */
  open: number;
  /** Replies kept for replay. */
  kept: number;
  /** The limit of open + kept keys (E_OVERLOADED past it). */
  maxKept: number;
}

/** Counters the metrics read (plain numbers, read when scraped). */
export interface StoreCounters {
  /** Records written (requests, attempts, checkpoints, replies, deletions). */
  writes: number;
  /** Committed transactions, with their latency: seconds per commit, as histogram buckets. */
  commits: { buckets: readonly number[]; counts: number[]; sum: number; count: number } | null;
  /**
   * Writes whose commit failed, kept to be retried: how many, the bytes they hold, and
   * how many were dropped past the cap (lost). Null for a store that never retries.
   */
  retained: { readonly writes: number; readonly bytes: number; readonly dropped: number } | null;
}

export interface RequestStore {
  readonly kind: StoreStatus["kind"];
  /**
   * Opens the store and returns the unanswered requests a previous primary left, in
   * acceptance order ([] for a fresh or in-memory store). Throws (JournalError) for a
   * store it must not use: corrupt, or written by another schema version. Called once,
   * before any other operation.
   */
  open(): Promise<OpenRequest[]>;
  /**
   * Looks `req.idempotencyKey` up and, when the key is free, takes it for `req`
   * atomically. The record is written before `finish` of the same key can commit.
   */
  admit(req: NewRequest): MaybePromise<AdmitResult>;
  /** An attempt of the key's request starts (numbered from 1); returns its fence. */
  attemptStarted(key: string, attempt: number): MaybePromise<string | number>;
  /**
   * Keeps a checkpoint (JSON text). Resolves once it is as durable as the store promises
   * (journal: committed); `ctx.checkpoint()` resolves only then. False: fenced out.
   */
  checkpoint(key: string, fence: string | number, json: string): MaybePromise<boolean>;
  /**
   * Keeps the reply for replay until `ttlMs` from now and closes the request. Resolves
   * once kept (journal: committed): the reply leaves for any client only then
   * (write-ahead). False: fenced out (another attempt answered).
   */
  finish(key: string, fence: string | number | null, reply: StoredReply): MaybePromise<boolean>;
  /** Forgets a request that ended with nothing worth replaying (cancelled): its key is free again. */
  release(key: string): void;
  /**
   * Stores shared by several primaries: calls `onReply` once when the key's request,
   * held elsewhere, answers. Single-primary stores leave it out.
   */
  follow?(key: string, onReply: (reply: StoredReply) => void): void;
  status(): StoreStatus;
  readonly counters: StoreCounters;
  /** Writes what is pending and releases the store (timers, file). Safe to call twice. */
  close(): Promise<void>;
}

/**
 * A write the journal did not commit now but keeps, to retry (group-commit.ts): its
 * commit failed, or earlier writes are still being retried. The journal logs the outage
 * once; callers log each of these at debug, or a full disk would log one error per
 * checkpoint and reply. `code` is the SQLite error's (SQLITE_FULL, SQLITE_IOERR_WRITE …).
 */
export class WriteKeptError extends Error {
  readonly code: string | undefined;

  constructor(message: string, cause: Error) {
    super(`${message}: ${cause.message}`, { cause });
    this.code = (cause as { code?: string }).code;
  }
}
