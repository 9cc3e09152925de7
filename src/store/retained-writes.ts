/**
 * The journal's writes whose commit failed, oldest first, kept until GroupCommit's
 * retries commit them: a FIFO that counts the bytes its writes hold in memory and, past
 * a cap, drops the oldest.
 */

/** One write: a prepared statement and its parameters, run inside a transaction. */
export type Write = () => void;

/**
 * What a write holds in memory, bytes (string lengths: payload, checkpoint, reply text).
 * A function is read only if the write is retained: a row that later writes of its batch
 * fold into knows its size once the batch is sealed.
 */
export type WriteSize = number | (() => number);

/**
 * Bytes counted for every write on top of its text: the closure, its captured numbers
 * and short strings (request id, handler, fingerprint), the queue's slots. An estimate,
 * so that a million small writes count for something against the cap.
 */
const WRITE_BYTES = 200;

/** One write kept: the statement, the bytes it counts, and whether it may be dropped. */
interface Kept {
  write: Write;
  bytes: number;
  /** Never dropped past the cap (see push). */
  keep: boolean;
}

export class RetainedWrites {
  readonly maxBytes: number;
  /** Writes kept, oldest first, from #head on (a failure path: one object each is fine). */
  #kept: Kept[] = [];
  #head = 0;
  /** Bytes the writes kept hold (their text plus WRITE_BYTES each). */
  bytes = 0;
  /** Writes dropped past maxBytes since this journal opened. */
  dropped = 0;

  /** `maxBytes`: the cap, bytes; the oldest writes go past it. */
  constructor(maxBytes: number) {
    this.maxBytes = maxBytes;
  }

  /** Writes kept. */
  get writes(): number {
    return this.#kept.length - this.#head;
  }

  /**
   * Appends `writes` (oldest first) with their sizes, then drops the oldest writes kept
   * until the rest fit in maxBytes. Returns how many were dropped (0 mostly).
   *
   * A write with `keeps[i]` set is not dropped: it moves behind the newest instead. That
   * is for a row's DELETE (a request released, a reply expired): dropped, its row would
   * come back at the next start and run again; moved later, it still follows its row's
   * INSERT and UPDATEs, and no write of that row comes after it (row ids are not reused).
   * Only when every write kept is such a one are they dropped too.
   */
  push(writes: readonly Write[], sizes: readonly WriteSize[], keeps: readonly boolean[]): number {
    for (let i = 0; i < writes.length; i++) {
      const size = sizes[i]!;
      this.#append({ write: writes[i]!, bytes: (typeof size === "number" ? size : size()) + WRITE_BYTES, keep: keeps[i]! });
    }
    let dropped = 0;
    let moved = 0;
    while (this.bytes > this.maxBytes && this.writes > 0) {
      const oldest = this.#kept[this.#head]!;
      if (oldest.keep && moved < this.writes) {
        this.#forget(1);
        this.#append(oldest);
        moved++;
        continue;
      }
      this.drop(1);
      dropped++;
    }
    return dropped;
  }

  /** The oldest `n` writes, still kept until `shift`. */
  oldest(n: number): Write[] {
    return this.#kept.slice(this.#head, this.#head + n).map((k) => k.write);
  }

  /** Forgets the oldest `n` writes: they committed. */
  shift(n: number): void {
    this.#forget(n);
  }

  /** Forgets the oldest `n` writes, counted as dropped: they will never commit. */
  drop(n: number): void {
    this.#forget(n);
    this.dropped += n;
  }

  /** Forgets every write (the journal closed with them uncommitted). */
  clear(): void {
    this.#forget(this.writes);
  }

  #append(kept: Kept): void {
    this.#kept.push(kept);
    this.bytes += kept.bytes;
  }

  #forget(n: number): void {
    for (let i = this.#head; i < this.#head + n; i++) this.bytes -= this.#kept[i]!.bytes;
    this.#head += n;
    // Compact once the forgotten front is most of the array, so shifting stays O(1) amortised.
    if (this.#head === this.#kept.length) {
      this.#kept = [];
      this.#head = 0;
    } else if (this.#head > 1024 && this.#head * 2 > this.#kept.length) {
      this.#kept = this.#kept.slice(this.#head);
      this.#head = 0;
    }
  }
}
