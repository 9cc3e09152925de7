/**
 * A node's answers to "how much memory do you use?": each query gets an id, and resolves
 * with the node's heap and RSS (bytes), or null when it does not answer within 1 s or
 * dies first.
 */
export type MemoryUse = { heapUsed: number; rss: number };

const MEMORY_QUERY_TIMEOUT_MS = 1000;

export class MemoryQueries {
  readonly #waiting = new Map<number, (v: MemoryUse | null) => void>();
  #next = 1;

  /** Sends a query through `post(q)`; resolves with the answer or null. */
  ask(post: (q: number) => void): Promise<MemoryUse | null> {
    const q = this.#next++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#waiting.delete(q);
        resolve(null);
      }, MEMORY_QUERY_TIMEOUT_MS);
      timer.unref();
      this.#waiting.set(q, (v) => {
        clearTimeout(timer);
        resolve(v);
      });
      post(q);
    });
  }

  answer(q: number, use: MemoryUse): void {
    this.#waiting.get(q)?.(use);
    this.#waiting.delete(q);
  }

  /** The node died: nobody will answer. */
  failAll(): void {
    for (const answer of this.#waiting.values()) answer(null);
    this.#waiting.clear();
  }
}
