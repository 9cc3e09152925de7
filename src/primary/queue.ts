/**
 * The primary's wait queue: highest priority first, FIFO within a priority, and no
 * starvation. Each entry is ranked by `enqueuedAt - priority × agingMs`: one priority
 * step is worth `agingMs` of waiting, so a low-priority request overtakes newer
 * high-priority ones once it has waited long enough. The rank never changes while an
 * entry waits, so a plain binary heap serves, and an entry knows its index in the heap,
 * so cancel and deadline remove it in O(log n).
 */

export interface Queued {
  /** Rank: lower runs first. Set by push; kept across a retry so a retried request keeps its place. */
  rank: number;
  /** Tie-break: arrival order. */
  seq: number;
  /** Index in the heap, or -1 when not queued. */
  heapIndex: number;
}

export class WaitQueue<T extends Queued> {
  readonly #heap: T[] = [];

  get length(): number {
    return this.#heap.length;
  }

  peek(): T | undefined {
    return this.#heap[0];
  }

  push(item: T): void {
    item.heapIndex = this.#heap.length;
    this.#heap.push(item);
    this.#up(item.heapIndex);
  }

  pop(): T | undefined {
    const top = this.#heap[0];
    if (top) this.remove(top);
    return top;
  }

  /** Removes an item wherever it is; false when it was not queued here. */
  remove(item: T): boolean {
    const i = item.heapIndex;
    if (i < 0 || this.#heap[i] !== item) return false;
    const last = this.#heap.pop()!;
    item.heapIndex = -1;
    if (last !== item) {
      this.#heap[i] = last;
      last.heapIndex = i;
      this.#down(i);
      this.#up(last.heapIndex);
    }
    return true;
  }

  /** What waits, in heap order (not rank order), without taking it out. */
  values(): readonly T[] {
    return this.#heap;
  }

  /** Empties the queue, returning what was in it in no particular order. */
  drain(): T[] {
    const items = this.#heap.splice(0);
    for (const item of items) item.heapIndex = -1;
    return items;
  }

  #less(a: T, b: T): boolean {
    return a.rank < b.rank || (a.rank === b.rank && a.seq < b.seq);
  }

  #up(i: number): void {
    const heap = this.#heap;
    const item = heap[i]!;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = heap[parent]!;
      if (!this.#less(item, p)) break;
      heap[i] = p;
      p.heapIndex = i;
      i = parent;
    }
    heap[i] = item;
    item.heapIndex = i;
  }

  #down(i: number): void {
    const heap = this.#heap;
    const n = heap.length;
    const item = heap[i]!;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && this.#less(heap[r]!, heap[l]!) ? r : l;
      const child = heap[c]!;
      if (!this.#less(child, item)) break;
      heap[i] = child;
      child.heapIndex = i;
      i = c;
    }
    heap[i] = item;
    item.heapIndex = i;
  }
}
