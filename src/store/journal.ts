/**
 * The SQLite journal (`--journal FILE`): keyed requests survive the primary. A request's
 * row is written when it is accepted, its attempt count when each attempt starts, its
 * checkpoints, and its reply; writes are group-committed (group-commit.ts).
 *
 * Promises (docs/journal.md): `ctx.checkpoint()` of a keyed request resolves once its
 * checkpoint has committed; a reply leaves once its row has committed (write-ahead). So
 * after a kill -9 a restarted primary resumes from the last checkpoint a handler saw
 * resolve, and never answers a key differently from what a client already received.
 *
 * The keys themselves (open, kept) are indexed in memory (KeyTable) for fast admits;
 * replies stay on disk and are read when replayed.
 */
import { statSync } from "node:fs";
import type { Logger } from "pino";
import { GroupCommit } from "./group-commit.js";
import { type Database, openJournalFile } from "./journal-file.js";
import { KeyTable, type KeyTableLimits, sweepInterval } from "./key-table.js";
import type { AdmitResult, NewRequest, OpenRequest, RequestStore, StoreCounters, StoredReply, StoreStatus } from "./store.js";

interface Row {
  row: number;
  key: string;
  request_id: string;
  handler: string;
  payload: string | null;
  fingerprint: string;
  priority: number;
  timeout_ms: number;
  deadline: number;
  attempts: number;
  checkpoint: string | null;
  reply: string | null;
  expires_at: number | null;
}

/**
 * A request's row while its INSERT waits in the batch: later writes of the same batch fold
 * into it. Once the batch is sealed (taken to commit) they no longer do: the INSERT may
 * fail and be retried as it is, and later writes follow it as UPDATEs.
 */
interface PendingRow {
  attempts: number;
  checkpoint: string | null;
  reply: string | null;
  expiresAt: number | null;
}

export interface JournalLimits extends KeyTableLimits {
  sync: "normal" | "full";
}

export class JournalStore implements RequestStore {
  readonly kind = "journal" as const;
  readonly file: string;
  readonly #db: Database;
  readonly #table: KeyTable;
  readonly #commits: GroupCommit;
  readonly #log: Logger;
  readonly #sql;
  /** Rows inserted in the batch not yet sealed: an echo's insert, attempt and reply become one write. */
  readonly #pending = new Map<string, PendingRow>();
  /** The rowid the next accepted request gets: rows are appended in acceptance order. */
  #nextRow = 1;
  #sweeper: NodeJS.Timeout | null = null;
  #closed = false;

  /** Opens the file (see journal-file.ts for what is refused). */
  static async create(file: string, limits: JournalLimits, log: Logger): Promise<JournalStore> {
    return JournalStore.fromDatabase(file, await openJournalFile(file, limits.sync), limits, log);
  }

  /**
   * The store on a connection `openJournalFile(file)` returned, which it then owns (and
   * closes). create() opens one; tests pass their own to reach its pragmas (a full disk:
   * `max_page_count`).
   */
  static fromDatabase(file: string, db: Database, limits: KeyTableLimits, log: Logger): JournalStore {
    return new JournalStore(file, db, limits, log);
  }

  private constructor(file: string, db: Database, limits: KeyTableLimits, log: Logger) {
    this.file = file;
    this.#db = db;
    this.#table = new KeyTable(limits);
    this.#commits = new GroupCommit(db, log, { onSeal: () => this.#pending.clear() });
    this.#log = log;
    this.#sql = {
      insert: db.prepare(
        "INSERT INTO requests (row, key, request_id, handler, payload, fingerprint, priority, timeout_ms, deadline, accepted_at, attempts, checkpoint, reply, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
      ),
      attempt: db.prepare("UPDATE requests SET attempts = ? WHERE row = ?"),
      checkpoint: db.prepare("UPDATE requests SET checkpoint = ? WHERE row = ?"),
      finish: db.prepare("UPDATE requests SET reply = ?, expires_at = ?, checkpoint = NULL WHERE row = ?"),
      remove: db.prepare("DELETE FROM requests WHERE row = ?"),
      reply: db.prepare<[number], { reply: string | null }>("SELECT reply FROM requests WHERE row = ?"),
      expire: db.prepare("DELETE FROM requests WHERE expires_at IS NOT NULL AND expires_at <= ?"),
      all: db.prepare<[], Row>("SELECT * FROM requests ORDER BY expires_at, row"),
      last: db.prepare<[], { last: number | null }>("SELECT max(row) AS last FROM requests"),
    };
  }

  get counters(): StoreCounters {
    return this.#commits.counters;
  }

  /** Resolves once no write is kept for retry after a failed commit (GroupCommit.caughtUp). */
  caughtUp(): Promise<void> {
    return this.#commits.caughtUp();
  }

  /**
   * Deletes the replies that expired while no primary ran, indexes the kept ones, and
   * returns the open requests in acceptance order.
   */
  async open(): Promise<OpenRequest[]> {
    const now = Date.now();
    this.#sql.expire.run(now);
    this.#nextRow = (this.#sql.last.get()?.last ?? 0) + 1;
    const open: OpenRequest[] = [];
    for (const row of this.#sql.all.iterate()) {
      if (row.reply === null) {
        this.#table.openKey(row.key, row.fingerprint, row.row);
        open.push(toOpen(row));
      } else {
        this.#table.openKey(row.key, row.fingerprint, row.row);
        this.#table.finish(row.key, JSON.parse(row.reply) as StoredReply, now, false, row.expires_at!);
      }
    }
    this.#sweeper = setInterval(() => this.#sweep(), sweepInterval(this.#table.limits.ttlMs)).unref();
    return open;
  }

  admit(req: NewRequest): AdmitResult {
    const key = req.idempotencyKey;
    const old = this.#table.rowOf(key);
    const result = this.#table.admit(req, Date.now(), () => {
      const row = this.#sql.reply.get(old!);
      return row?.reply ? (JSON.parse(row.reply) as StoredReply) : null;
    });
    // An expired reply the admit dropped leaves the file too.
    if (old !== undefined && this.#table.rowOf(key) !== old) this.#remove(old);
    if (result.kind === "accepted") {
      const s = this.#sql.insert;
      const { requestId, handler, payloadJson, fingerprint, priority, timeoutMs, deadline } = req;
      const accepted = Date.now();
      const rowId = this.#nextRow++;
      this.#table.setRow(key, rowId);
      const row: PendingRow = { attempts: 0, checkpoint: null, reply: null, expiresAt: null };
      this.#pending.set(key, row);
      this.#commits.add(
        () => s.run(rowId, key, requestId, handler, payloadJson, fingerprint, priority, timeoutMs, deadline, accepted, row.attempts, row.checkpoint, row.reply, row.expiresAt),
        // Read if the commit fails, once the row's folds are in.
        () => key.length + (payloadJson?.length ?? 0) + (row.checkpoint?.length ?? 0) + (row.reply?.length ?? 0),
      );
    }
    return result;
  }

  attemptStarted(key: string, attempt: number): number {
    const row = this.#pending.get(key);
    const rowId = this.#table.rowOf(key);
    if (row) row.attempts = attempt;
    else if (rowId !== undefined) this.#commits.add(() => this.#sql.attempt.run(attempt, rowId), 0);
    return attempt;
  }

  checkpoint(key: string, _fence: string | number, json: string): Promise<boolean> {
    const row = this.#pending.get(key);
    const rowId = this.#table.rowOf(key);
    if (row) row.checkpoint = json;
    else if (rowId !== undefined) this.#commits.add(() => this.#sql.checkpoint.run(json, rowId), json.length);
    return this.#commits.committed();
  }

  finish(key: string, _fence: string | number | null, reply: StoredReply): Promise<boolean> {
    const now = Date.now();
    const expiresAt = now + this.#table.limits.ttlMs;
    this.#table.finish(key, reply, now, false, expiresAt);
    const text = JSON.stringify(reply);
    const row = this.#pending.get(key);
    const rowId = this.#table.rowOf(key);
    if (row) Object.assign(row, { reply: text, expiresAt, checkpoint: null });
    else if (rowId !== undefined) this.#commits.add(() => this.#sql.finish.run(text, expiresAt, rowId), text.length);
    return this.#commits.committed();
  }

  release(key: string): void {
    const rowId = this.#table.rowOf(key);
    this.#table.release(key);
    this.#pending.delete(key); // its INSERT still runs, and this DELETE after it
    if (rowId !== undefined) this.#remove(rowId);
  }

  status(): StoreStatus {
    return {
      kind: "journal",
      file: this.file,
      sizeBytes: fileSize(this.file) + fileSize(`${this.file}-wal`),
      open: this.#table.open,
      kept: this.#table.kept,
      maxKept: this.#table.limits.maxKeys,
    };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#sweeper) clearInterval(this.#sweeper);
    this.#commits.close();
    this.#db.close();
  }

  /** Expired replies leave the index and the file. */
  #sweep(): void {
    const gone = this.#table.sweep(Date.now());
    if (gone.length === 0) return;
    for (const row of gone) this.#remove(row);
    this.#log.debug({ expired: gone.length }, "journal: expired replies deleted");
  }

  #remove(row: number): void {
    const s = this.#sql.remove;
    this.#commits.add(() => s.run(row), 0, true); // never dropped: the row would come back at the next start
  }
}

function toOpen(row: Row): OpenRequest {
  return {
    idempotencyKey: row.key,
    requestId: row.request_id,
    handler: row.handler,
    payloadJson: row.payload,
    fingerprint: row.fingerprint,
    priority: row.priority,
    timeoutMs: row.timeout_ms,
    deadline: row.deadline,
    // The attempt running when the primary died counts as a failed one: the next is attempts + 1.
    attempts: row.attempts,
    checkpoint: row.checkpoint,
  };
}

function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}
