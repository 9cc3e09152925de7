/**
 * A fixed-size ring of numbered entries: the dashboard's chart samples and timeline
 * events. Each entry gets the next sequence number, so a reader that remembers the last
 * one it saw asks for what came since, however long it was away (up to the ring's size).
 */
export class Ring<T> {
  readonly #items: Array<T & { seq: number }> = [];
  readonly #size: number;
  #next = 1;

  /** Keeps the last `size` entries (size ≥ 1). */
  constructor(size: number) {
    this.#size = size;
  }

  /** Adds an entry; returns it with its sequence number. */
  push(item: T): T & { seq: number } {
    const entry = { ...item, seq: this.#next++ };
    this.#items.push(entry);
    if (this.#items.length > this.#size) this.#items.shift();
    return entry;
  }

  /** The sequence number of the last entry, 0 before any. */
  get last(): number {
    return this.#next - 1;
  }

  /** The entries after `seq`, oldest first (all that are kept when `seq` is older than the ring). */
  since(seq: number): Array<T & { seq: number }> {
    const first = this.#items[0];
    if (!first || seq < first.seq) return this.#items.slice();
    return this.#items.slice(seq - first.seq + 1);
  }
}
