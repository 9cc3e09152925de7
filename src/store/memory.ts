/**
 * The in-memory store: idempotency keys within one primary's life (DESIGN.md: "Without
 * --journal, keys work the same within one primary's life"). Checkpoints stay where they
 * always were, in the Job; this store keeps only keys and replies, bounded by count and
 * bytes (KeyTable), swept after their TTL.
 */
import { KeyTable, type KeyTableLimits, sweepInterval } from "./key-table.js";
import type { AdmitResult, NewRequest, OpenRequest, RequestStore, StoreCounters, StoredReply, StoreStatus } from "./store.js";

export class MemoryStore implements RequestStore {
  readonly kind = "memory" as const;
  readonly counters: StoreCounters = { writes: 0, commits: null, retained: null };
  readonly #table: KeyTable;
  readonly #sweeper: NodeJS.Timeout;

  /** `limits.maxBytes` bounds the replies held (their JSON text). */
  constructor(limits: KeyTableLimits) {
    this.#table = new KeyTable(limits);
    this.#sweeper = setInterval(() => this.#table.sweep(Date.now()), sweepInterval(limits.ttlMs)).unref();
  }

  async open(): Promise<OpenRequest[]> {
    return [];
  }

  admit(req: NewRequest): AdmitResult {
    return this.#table.admit(req, Date.now());
  }

  attemptStarted(_key: string, attempt: number): number {
    return attempt;
  }

  checkpoint(): boolean {
    return true;
  }

  finish(key: string, _fence: string | number | null, reply: StoredReply): boolean {
    this.#table.finish(key, reply, Date.now(), true);
    return true;
  }

  release(key: string): void {
    this.#table.release(key);
  }

  status(): StoreStatus {
    return { kind: "memory", file: null, sizeBytes: null, open: this.#table.open, kept: this.#table.kept, maxKept: this.#table.limits.maxKeys };
  }

  async close(): Promise<void> {
    clearInterval(this.#sweeper);
  }
}
