/**
 * Group commit: the journal's writes queue up for COMMIT_WINDOW_MS and go to SQLite in
 * one transaction, or as soon as MAX_BATCH are waiting. One transaction per statement
 * costs 25–30 µs of CPU per request here, one per batch about 5 µs (issue 11's
 * measurement). Writes commit in the order they were queued, so a request's row always
 * commits with or before its reply.
 *
 * A commit that fails (a full disk: SQLITE_FULL, SQLITE_IOERR_*) rolls back, and its
 * writes are kept (retained-writes.ts) and retried, oldest first and before any newer
 * write, after RETRY_FIRST_MS, the wait doubling up to RETRY_MAX_MS, until they commit:
 * a request's row whose INSERT failed is written once the disk has room again, before
 * its UPDATEs. Each failed retry halves the writes tried in one transaction (down to
 * one), so a batch too big to commit whole commits in parts; each commit that succeeds
 * doubles it back, up to MAX_BATCH. The waiters of a batch whose commit failed are
 * rejected at once, and so are those of batches queued while older writes wait to be
 * retried (their writes commit after them, later): a checkpoint or a reply never waits
 * for the disk (keyed.ts answers from memory and logs). What is retained is bounded by
 * MAX_RETAINED_BYTES: past it the oldest writes are dropped, and lost. So is one write
 * that fails alone with an error that is not the disk's (a constraint): no retry helps.
 * The error is logged once when commits start failing, and the catching up once at info.
 */
import type { Logger } from "pino";
import type { Database } from "./journal-file.js";
import { WriteKeptError } from "./store.js";
import { RetainedWrites, type Write, type WriteSize } from "./retained-writes.js";

export type { Write, WriteSize } from "./retained-writes.js";

/**
 * How long a batch gathers writes, ms. Measured here (keyed echo, 256 in flight, in
 * process): 1 ms gives 15–30% more throughput than committing at the end of each
 * event-loop turn, since every commit writes whole 4 KiB pages to the WAL and fewer,
 * fuller commits write fewer of them; it adds at most 1 ms to a keyed reply.
 */
const COMMIT_WINDOW_MS = 1;

/** Writes that close a transaction early, so one batch never holds the event loop long; also the largest retry. */
const MAX_BATCH = 512;

/**
 * First wait before retrying a failed commit, ms: a disk that filled for a moment (a log
 * rotated, a burst of writes) gets its room back soon, and the writes kept should not
 * wait long for it.
 */
export const RETRY_FIRST_MS = 10;

/**
 * Longest wait between retries, ms: the wait doubles up to it, so a disk full for hours
 * costs one failed transaction a second, and the journal catches up within a second of
 * the disk having room.
 */
export const RETRY_MAX_MS = 1000;

/**
 * Bytes the writes kept for retry may hold (text lengths, plus an estimate per write):
 * 64 MiB, about 200,000 small keyed requests, or a few seconds of a busy primary's
 * writes, against a primary that holds gigabytes. Past it the oldest writes are dropped
 * and lost: the journal then keeps less than it promised, as a failed commit did before
 * writes were retried, rather than the primary running out of memory on a full disk.
 */
export const MAX_RETAINED_BYTES = 64 * 1024 * 1024;

/** At most one "dropped" error line this often while writes are dropped, ms (one per flush would flood the log). */
const DROP_LOG_MS = 10_000;

/** Commit latency buckets, seconds: 50 µs … 1 s. */
export const COMMIT_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1] as const;

interface Batch {
  writes: Write[];
  /** What each write holds, bytes (read only if the batch fails). */
  sizes: WriteSize[];
  /** Per write: never dropped past the cap (a DELETE; see RetainedWrites.push). */
  keeps: boolean[];
  /** Created on demand: most batches have nobody waiting for them. */
  promise: Promise<boolean> | null;
  resolve: ((ok: boolean) => void) | null;
  reject: ((err: Error) => void) | null;
}

/** The retries' state from a failed commit until the journal catches up. */
interface Outage {
  /** performance.now() at the first failure, ms. */
  since: number;
  /** The last commit's error. */
  err: Error;
  /** Writes retried that have committed since. */
  retried: number;
  /** RetainedWrites.dropped when the outage began, and when the last "dropped" line was logged. */
  droppedBefore: number;
  droppedLogged: number;
  /** performance.now() of the last "dropped" line, ms (null: none yet). */
  droppedLoggedAt: number | null;
}

export interface GroupCommitOptions {
  /**
   * Called when a batch is taken to commit, before its writes run: a caller folding later
   * writes into a queued one (journal.ts's pending rows) stops there, since the write may
   * now run, fail and be retried as it is.
   */
  onSeal?: () => void;
}

export class GroupCommit {
  readonly #db: Database;
  readonly #log: Logger;
  readonly #onSeal: (() => void) | undefined;
  #batch: Batch = newBatch();
  #scheduled = false;
  #closed = false;
  readonly #retained = new RetainedWrites(MAX_RETAINED_BYTES);
  /** Non-null while writes are retained. */
  #outage: Outage | null = null;
  #retryTimer: NodeJS.Timeout | null = null;
  /** Wait before the next retry after a failed one, ms. */
  #retryDelay = RETRY_FIRST_MS;
  /** Writes tried in one retry transaction. */
  #chunk = MAX_BATCH;
  #caughtUpWaiters: { promise: Promise<void>; resolve: () => void } | null = null;
  /**
   * Records written, the commit latency histogram, and the writes retained for retry and
   * dropped (plain numbers, read by the metrics).
   */
  readonly counters = {
    writes: 0,
    commits: { buckets: COMMIT_BUCKETS, counts: new Array<number>(COMMIT_BUCKETS.length + 1).fill(0), sum: 0, count: 0 },
    retained: this.#retained as { readonly writes: number; readonly bytes: number; readonly dropped: number },
  };

  constructor(db: Database, log: Logger, options: GroupCommitOptions = {}) {
    this.#db = db;
    this.#log = log;
    this.#onSeal = options.onSeal;
  }

  /**
   * Queues a write for the current batch. `bytes`: what the write holds in memory (its
   * text: payload, checkpoint, reply), counted against MAX_RETAINED_BYTES if its commit
   * fails. `keep`: never dropped past that cap, only moved behind newer writes (a row's
   * DELETE, which no later write of its row follows: RetainedWrites.push). Ignored once
   * closed.
   */
  add(write: Write, bytes: WriteSize, keep = false): void {
    if (this.#closed) return;
    this.#batch.writes.push(write);
    this.#batch.sizes.push(bytes);
    this.#batch.keeps.push(keep);
    if (this.#batch.writes.length >= MAX_BATCH) this.flush();
    else if (!this.#scheduled) {
      this.#scheduled = true;
      setTimeout(this.#onWindow, COMMIT_WINDOW_MS);
    }
  }

  /**
   * Resolves (true) once everything queued so far has committed. Rejects if that commit
   * failed, or at once while older writes wait to be retried: what was queued will
   * commit after them, with no promise of when.
   */
  committed(): Promise<boolean> {
    const batch = this.#batch;
    if (batch.writes.length === 0) return this.#outage ? Promise.reject(behind(this.#outage.err)) : COMMITTED;
    batch.promise ??= new Promise<boolean>((resolve, reject) => {
      batch.resolve = resolve;
      batch.reject = reject;
    });
    return batch.promise;
  }

  /**
   * Flushes the current batch, then resolves once no write is retained: at once when its
   * commit succeeds and none was, else when the retries have committed (or dropped) them
   * all. Never rejects (a waiter of the flushed batch may still be rejected); pending
   * forever if the disk never gets room and nothing is dropped, or the journal closes
   * with writes kept.
   */
  caughtUp(): Promise<void> {
    this.flush();
    if (!this.#outage) return CAUGHT_UP;
    if (!this.#caughtUpWaiters) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => (resolve = r));
      this.#caughtUpWaiters = { promise, resolve };
    }
    return this.#caughtUpWaiters.promise;
  }

  /**
   * Commits the current batch now, synchronously: or, while older writes wait to be
   * retried, queues its writes behind them and rejects its waiters.
   */
  flush(): void {
    const batch = this.#batch;
    if (batch.writes.length === 0) return void batch.resolve?.(true);
    this.#batch = newBatch();
    this.#onSeal?.();
    if (this.#outage) {
      this.#retain(batch);
      batch.reject?.(behind(this.#outage.err));
      return;
    }
    const err = this.#commit(batch.writes);
    if (!err) return void batch.resolve?.(true);
    const dropped = this.#retained.dropped;
    this.#outage = { since: performance.now(), err, retried: 0, droppedBefore: dropped, droppedLogged: dropped, droppedLoggedAt: null };
    this.#log.error({ err, writes: batch.writes.length }, "journal commit failed: its writes are kept and retried until they commit");
    this.#retain(batch);
    batch.reject?.(new WriteKeptError("journal commit failed: kept, to retry", err));
    this.#scheduleRetry(RETRY_FIRST_MS);
    this.#retryDelay = RETRY_FIRST_MS * 2;
  }

  /**
   * Commits what is queued and what is retained, as far as the disk takes it (halving
   * the transaction down to one write on failure), then takes no more writes. What could
   * not commit is logged at error and lost. No retry runs after.
   */
  close(): void {
    if (this.#closed) return;
    this.flush();
    this.#closed = true;
    if (this.#retryTimer) clearTimeout(this.#retryTimer);
    this.#retryTimer = null;
    while (this.#retained.writes > 0) {
      const n = Math.min(this.#chunk, this.#retained.writes);
      this.#resetWal();
      if (this.#retryOnce(n)) continue;
      if (n === 1) break;
    }
    if (this.#retained.writes === 0) return void (this.#outage && this.#caughtUpNow());
    this.#log.error({ err: this.#outage?.err, writes: this.#retained.writes, bytes: this.#retained.bytes }, "journal closed with writes it could not commit: they are lost");
    this.#retained.clear();
  }

  readonly #onWindow = (): void => {
    this.#scheduled = false;
    this.flush();
  };

  /** One retry: the oldest writes kept, one transaction; more at once after a success, later after a failure. */
  readonly #retry = (): void => {
    this.#retryTimer = null;
    if (this.#closed || !this.#outage) return;
    if (this.#retained.writes === 0) return this.#caughtUpNow(); // all dropped past the cap
    this.#resetWal();
    if (!this.#retryOnce(Math.min(this.#chunk, this.#retained.writes))) {
      this.#scheduleRetry(this.#retryDelay);
      this.#retryDelay = Math.min(this.#retryDelay * 2, RETRY_MAX_MS);
    } else if (this.#retained.writes > 0) {
      // The disk takes writes again: the next part goes on the next turn, so catching up
      // on many writes never holds the event loop for long.
      this.#retryDelay = RETRY_FIRST_MS;
      this.#scheduleRetry(0);
    } else this.#caughtUpNow();
  };

  /**
   * Tries the `n` oldest writes kept in one transaction; true if they committed (or the
   * one write tried was dropped). Halves or doubles the next try.
   */
  #retryOnce(n: number): boolean {
    const err = this.#commit(this.#retained.oldest(n));
    if (err) {
      this.#outage!.err = err;
      if (n === 1 && !mayPassLater(err)) {
        // One write failing alone for another reason than the disk (a constraint, a value
        // too big, a bug) fails the same way on every retry, and would hold every later
        // write behind it for good.
        this.#retained.drop(1);
        this.#outage!.droppedLogged++; // logged here, not as past the cap
        this.#log.error({ err }, "journal: a write failed with an error no retry fixes: it was dropped and is lost");
        return true;
      }
      this.#chunk = Math.max(1, Math.floor(n / 2));
      return false;
    }
    this.#retained.shift(n);
    this.#outage!.retried += n;
    this.#chunk = Math.min(n * 2, MAX_BATCH);
    return true;
  }

  /**
   * Before a retry: copies the write-ahead log into the database and truncates it
   * (`PRAGMA wal_checkpoint(TRUNCATE)`; no other connection reads this file). SQLite only
   * does so by itself once the log passes 1,000 pages (4 MiB); a disk or a file-size
   * limit that fills before then would fail every retry, the log never shrinking. Its
   * failure (the copy needs room too) is the retry's to report.
   */
  #resetWal(): void {
    try {
      this.#db.pragma("wal_checkpoint(TRUNCATE)");
    } catch {
      // the retry below fails the same way, and says so
    }
  }

  #caughtUpNow(): void {
    const outage = this.#outage!;
    this.#outage = null;
    this.#retryDelay = RETRY_FIRST_MS;
    this.#chunk = MAX_BATCH;
    const failedMs = Math.round(performance.now() - outage.since);
    const dropped = this.#retained.dropped - outage.droppedBefore;
    this.#log.info({ writes: outage.retried, dropped, failedMs }, "journal caught up: the writes kept after a failed commit have committed");
    this.#caughtUpWaiters?.resolve();
    this.#caughtUpWaiters = null;
  }

  /** Keeps a failed or held-back batch's writes, dropping the oldest past the cap (logged, throttled). */
  #retain(batch: Batch): void {
    if (this.#retained.push(batch.writes, batch.sizes, batch.keeps) === 0) return;
    const outage = this.#outage!;
    const now = performance.now();
    if (outage.droppedLoggedAt !== null && now - outage.droppedLoggedAt < DROP_LOG_MS) return;
    outage.droppedLoggedAt = now;
    // An INSERT dropped while its row's UPDATEs and DELETE stay is harmless: they change
    // no row (rowids are never reused within a primary's life), and the request is lost
    // as any dropped write is. An UPDATE dropped after its INSERT committed leaves that
    // row older (an attempt count, a checkpoint, or no reply: the request runs again
    // after a restart).
    this.#log.error(
      { dropped: this.#retained.dropped - outage.droppedLogged, maxBytes: MAX_RETAINED_BYTES, writes: this.#retained.writes },
      "journal: writes kept for retry passed their memory cap: the oldest were dropped and are lost",
    );
    outage.droppedLogged = this.#retained.dropped;
  }

  /** Runs `writes` in one transaction; returns its error, or null once committed (and measured). */
  #commit(writes: readonly Write[]): Error | null {
    const started = performance.now();
    try {
      this.#db.transaction(() => {
        for (const write of writes) write();
      })();
    } catch (err) {
      return err as Error;
    }
    this.#observe((performance.now() - started) / 1000, writes.length);
    return null;
  }

  #scheduleRetry(ms: number): void {
    this.#retryTimer = setTimeout(this.#retry, ms).unref();
  }

  #observe(seconds: number, writes: number): void {
    const c = this.counters;
    c.writes += writes;
    let i = 0;
    while (i < COMMIT_BUCKETS.length && seconds > COMMIT_BUCKETS[i]!) i++;
    c.commits.counts[i]!++;
    c.commits.sum += seconds;
    c.commits.count++;
  }
}

const COMMITTED = Promise.resolve(true);
const CAUGHT_UP = Promise.resolve();

function newBatch(): Batch {
  return { writes: [], sizes: [], keeps: [], promise: null, resolve: null, reject: null };
}

/**
 * Whether a failed commit may pass on a later try: the disk or the file (full, I/O,
 * locked, read-only, out of memory, corrupt). Any other error is the write's own.
 */
function mayPassLater(err: Error): boolean {
  const code = (err as { code?: unknown }).code;
  return typeof code === "string" && /^SQLITE_(FULL|IOERR|BUSY|LOCKED|NOMEM|READONLY|CANTOPEN|PROTOCOL|CORRUPT|NOTADB)/.test(code);
}

/** The rejection of writes queued behind retained ones. */
function behind(cause: Error): Error {
  return new WriteKeptError("journal: earlier writes failed to commit and are being retried; these commit after them", cause);
}
