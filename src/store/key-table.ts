/**
 * The keys a single-primary store holds, in memory: open requests, and answered ones
 * kept for replay until they expire. Bounded by a count of keys and by the bytes of the
 * replies it holds, so no run of distinct keys can grow the primary's heap without
 * limit; past either bound `admit` answers "full" (E_OVERLOADED).
 *
 * Entries are in a Map in the order they last changed (a finish moves its key to the
 * end) and every reply lives `ttlMs`, so the expired ones are always at the front: a
 * sweep stops at the first live entry.
 */
import type { AdmitResult, NewRequest, StoredReply } from "./store.js";

interface Entry {
  fingerprint: string;
  /** Unanswered while null. */
  expiresAt: number | null;
  /** The reply, when this table holds it (memory store); the journal keeps it on disk. */
  reply: StoredReply | null;
  /** Bytes of the reply held here, against maxBytes. */
  bytes: number;
  /** The journal's row (its rowid) for this key; 0 in the memory store. */
  row: number;
}

export interface KeyTableLimits {
  /** Keys (open and kept) before admit answers "full". */
  maxKeys: number;
  /** Bytes of replies held in memory before admit answers "full". */
  maxBytes: number;
  /** How long a reply is kept, ms. */
  ttlMs: number;
}

export class KeyTable {
  readonly #entries = new Map<string, Entry>();
  readonly limits: KeyTableLimits;
  #open = 0;
  #bytes = 0;

  constructor(limits: KeyTableLimits) {
    this.limits = limits;
  }

  get open(): number {
    return this.#open;
  }

  get kept(): number {
    return this.#entries.size - this.#open;
  }

  /**
   * The state of `req`'s key, taking it when free. `loadReply` fetches a reply this
   * table does not hold (journal: from disk); a reply that cannot be found counts as
   * expired.
   */
  admit(req: NewRequest, now: number, loadReply?: (key: string) => StoredReply | null): AdmitResult {
    const entry = this.#entries.get(req.idempotencyKey);
    if (entry && (entry.expiresAt === null || entry.expiresAt > now)) {
      if (entry.expiresAt === null) return { kind: "open", fingerprint: entry.fingerprint };
      const reply = entry.reply ?? loadReply?.(req.idempotencyKey) ?? null;
      if (reply) return { kind: "replay", fingerprint: entry.fingerprint, reply };
    }
    if (entry) this.#delete(req.idempotencyKey, entry);
    if (this.#entries.size >= this.limits.maxKeys) return { kind: "full", limit: this.limits.maxKeys };
    if (this.#bytes > this.limits.maxBytes) return { kind: "full", limit: this.limits.maxKeys };
    this.openKey(req.idempotencyKey, req.fingerprint);
    return { kind: "accepted" };
  }

  /** Marks a key open (admit, or a request recovered from disk), with its journal row. */
  openKey(key: string, fingerprint: string, row = 0): void {
    this.#entries.set(key, { fingerprint, expiresAt: null, reply: null, bytes: 0, row });
    this.#open++;
  }

  /** The journal row of `key` (0 when none was given), undefined when the key is not held. */
  rowOf(key: string): number | undefined {
    return this.#entries.get(key)?.row;
  }

  /** Sets the journal row of a key `admit` just accepted. */
  setRow(key: string, row: number): void {
    const entry = this.#entries.get(key);
    if (entry) entry.row = row;
  }

  /** The key's request answered: keep `reply` (or only its expiry, when `hold` is false) for ttlMs. */
  finish(key: string, reply: StoredReply, now: number, hold: boolean, expiresAt = now + this.limits.ttlMs): void {
    const entry = this.#entries.get(key);
    if (!entry) return;
    this.#delete(key, entry);
    const bytes = hold ? replyBytes(reply) : 0;
    this.#entries.set(key, { fingerprint: entry.fingerprint, expiresAt, reply: hold ? reply : null, bytes, row: entry.row });
    this.#bytes += bytes;
  }

  /** Forgets a key (a cancelled request: the key is free again). */
  release(key: string): void {
    const entry = this.#entries.get(key);
    if (entry) this.#delete(key, entry);
  }

  /** Drops the replies expired by `now`; returns their journal rows. */
  sweep(now: number): number[] {
    const gone: number[] = [];
    for (const [key, entry] of this.#entries) {
      if (entry.expiresAt === null) continue; // open: it expires only once answered
      if (entry.expiresAt > now) break;
      this.#delete(key, entry);
      gone.push(entry.row);
    }
    return gone;
  }

  #delete(key: string, entry: Entry): void {
    this.#entries.delete(key);
    if (entry.expiresAt === null) this.#open--;
    this.#bytes -= entry.bytes;
  }
}

/** What a kept reply costs in memory, roughly: its JSON text (UTF-16, 2 bytes a character) and meta. */
function replyBytes(reply: StoredReply): number {
  const text = reply.ok ? reply.json.length : reply.error.message.length + reply.error.code.length;
  return 2 * text + 128;
}

/** How often expired replies are swept, ms: a tenth of the TTL, within 100 ms … 60 s. */
export function sweepInterval(ttlMs: number): number {
  return Math.min(60_000, Math.max(100, Math.floor(ttlMs / 10)));
}
