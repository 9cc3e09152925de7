/**
 * One attempt inside a node: its abort signal and its checkpoints on their way to the
 * primary. At most one checkpoint per attempt is in transit: one saved while another is
 * unacknowledged waits here, and a newer one replaces it (its waiters then resolve with
 * the newer one, which supersedes it). So a handler that saves without awaiting holds at
 * most two states (one in transit, one waiting) instead of every one it made: unawaited
 * 1 MiB checkpoints once reached 3 GiB in transit.
 */
import type { RunMsg } from "../nodes/messages.js";

interface Waiter {
  resolve: () => void;
  reject: (err: unknown) => void;
}

/** A promise whose rejection nobody needs to handle: a refused checkpoint never kills its node. */
export function quietPromise(executor: (resolve: () => void, reject: (err: unknown) => void) => void): Promise<void> {
  const promise = new Promise<void>(executor);
  promise.catch(() => {});
  return promise;
}

export function quietRejection(err: unknown): Promise<void> {
  return quietPromise((_, reject) => reject(err));
}

/** Its AbortController is made only if the handler reads ctx.signal (most never do, and one costs ~8% of a small request's node time). */
export class Running {
  controller: AbortController | null = null;
  reason: Error | null = null;
  startedAt = 0;
  /** Index of this attempt's entry in the shared slots, or -1. */
  slot = -1;
  #seq = 0;
  /** The seq of the checkpoint in transit (0: none), and who waits for its ack. */
  #inTransit = 0;
  #transitWaiters: Waiter[] = [];
  /** The newest checkpoint saved while another was in transit. */
  #next: { json: string; waiters: Waiter[] } | null = null;

  constructor(readonly msg: RunMsg) {}

  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.reason) this.controller.abort(this.reason);
    }
    return this.controller.signal;
  }

  abort(reason: Error): void {
    this.reason = reason;
    this.controller?.abort(reason);
    // The primary stores no checkpoint for an attempt it gave up on: fail the waits now.
    this.#settleAll((w) => w.reject(reason));
  }

  /**
   * Sends `json` now through `send(seq, json)`, or keeps it until the one in transit is
   * acknowledged. Resolves once the primary holds it or a later state.
   */
  checkpoint(json: string, send: (seq: number, json: string) => void): Promise<void> {
    return quietPromise((resolve, reject) => {
      const waiter = { resolve, reject };
      if (this.#inTransit === 0) {
        this.#transitWaiters = [waiter];
        this.#inTransit = ++this.#seq;
        send(this.#inTransit, json);
      } else if (this.#next) {
        this.#next.json = json;
        this.#next.waiters.push(waiter);
      } else {
        this.#next = { json, waiters: [waiter] };
      }
    });
  }

  /** The primary holds checkpoint `seq`: its waiters resolve, and the waiting one goes out. */
  acked(seq: number, send: (seq: number, json: string) => void): void {
    if (seq !== this.#inTransit) return;
    for (const w of this.#transitWaiters) w.resolve();
    this.#transitWaiters = [];
    this.#inTransit = 0;
    const next = this.#next;
    this.#next = null;
    if (next) {
      this.#transitWaiters = next.waiters;
      this.#inTransit = ++this.#seq;
      send(this.#inTransit, next.json);
    }
  }

  /** The attempt ended (it returned): nobody waits on its checkpoints now. */
  ended(): void {
    this.#settleAll((w) => w.resolve());
  }

  #settleAll(settle: (w: Waiter) => void): void {
    const waiters = [...this.#transitWaiters, ...(this.#next?.waiters ?? [])];
    this.#transitWaiters = [];
    this.#next = null;
    this.#inTransit = 0;
    for (const w of waiters) settle(w);
  }
}
