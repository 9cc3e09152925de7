/**
 * Admission bounds shared by every client: each connection's fair share of the queue,
 * and the last-resort guard on the primary's own heap.
 */
import { getHeapStatistics } from "node:v8";

/** A client (a connection) as the queue's fair sharing sees it. */
export interface ShareHolder {
  /** Its requests accepted and not yet answered. */
  readonly inflight: number;
  /** Answers one of its waiting requests E_OVERLOADED, to make room; false when none waits. */
  evictOne(): boolean;
}

/**
 * The queue's fair sharing between clients, so a few greedy ones cannot keep everyone
 * else out. A client's share is the queue split evenly among the clients with work
 * (itself included). While the queue has room nobody is limited; once it is full, a
 * client under its share still gets in: the client furthest over its share gives up its
 * newest waiting request (answered E_OVERLOADED, as a full queue would have answered it).
 */
export class ClientShares {
  readonly #maxQueue: number;
  readonly #holders = new Set<ShareHolder>();

  constructor(maxQueue: number) {
    this.#maxQueue = maxQueue;
  }

  /** Clients with at least one request in flight. */
  get busy(): number {
    return this.#holders.size;
  }

  /** A client went from no request in flight to one. */
  started(client: ShareHolder): void {
    this.#holders.add(client);
  }

  /** A client went back to no request in flight (or left). */
  stopped(client: ShareHolder): void {
    this.#holders.delete(client);
  }

  /** A client's share of the queue, in requests in flight (at least 1). */
  share(client: ShareHolder): number {
    const clients = this.#holders.size + (this.#holders.has(client) ? 0 : 1);
    return Math.max(1, Math.floor(this.#maxQueue / clients));
  }

  /** The queue is full and `client` asks for a place: true when a greedier client gave one up. */
  makeRoom(client: ShareHolder): boolean {
    const share = this.share(client);
    if (client.inflight >= share) return false;
    let largest: ShareHolder | null = null;
    for (const holder of this.#holders) if (holder !== client && (!largest || holder.inflight > largest.inflight)) largest = holder;
    if (!largest || largest.inflight <= share) return false;
    return largest.evictOne();
  }
}

/**
 * Refuse new work once the primary's heap is used past this fraction of V8's limit:
 * the bounds above should keep it far below, so reaching this means a bound missed
 * something; refusing keeps the primary alive (V8 aborts the process at the limit).
 */
export const HEAP_GUARD_FRACTION = 0.8;
/** The heap statistics are read at most this often (they cost ~1 µs, requests cost less). */
const HEAP_SAMPLE_MS = 10;

let sampledAt = -Infinity;
let near = false;

/** Whether the primary's heap is near its limit (used/limit over HEAP_GUARD_FRACTION), sampled every 10 ms. */
export function heapNearLimit(now = performance.now()): boolean {
  if (now - sampledAt >= HEAP_SAMPLE_MS) {
    sampledAt = now;
    const heap = getHeapStatistics();
    near = heap.used_heap_size > heap.heap_size_limit * HEAP_GUARD_FRACTION;
  }
  return near;
}

/**
 * Thins out a warning repeated under attack (a refused connection, a refused request):
 * one line per `ms` at most, which says how many were left out since the last.
 */
export class Throttle {
  readonly #ms: number;
  #last = -Infinity;
  #skipped = 0;

  constructor(ms = 1000) {
    this.#ms = ms;
  }

  /** The number skipped since the last line when this one may be logged; -1 when it is skipped. */
  take(now = performance.now()): number {
    if (now - this.#last < this.#ms) {
      this.#skipped++;
      return -1;
    }
    this.#last = now;
    const skipped = this.#skipped;
    this.#skipped = 0;
    return skipped;
  }
}
