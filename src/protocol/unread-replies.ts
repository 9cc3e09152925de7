/**
 * The replies the fronts' connections (TCP and HTTP: one budget) could not send yet:
 * bytes in a socket's write buffer (socket.writableLength, off the heap, where the heap
 * guard never looks) and HTTP responses queued behind an earlier one on the same
 * connection (pipelining: they have no socket yet and keep their body on the heap). A TCP
 * connection is bounded on its own (maxUnsentReplyBytes holds its waiting requests, but
 * what is running still answers); a thousand clients that never read would still each
 * hold theirs. Past `max` bytes in all, the connection holding the most is cut (a reset,
 * which cancels what it has in flight): its client is not reading them, and the others'
 * replies are not held up for it.
 *
 * A client that reads is backed up too for a moment after each large reply (a write past
 * the socket's high-water mark), so a burst of large replies to clients that read could
 * pass the budget: only a connection backed up for GRACE_MS without a drain is cut, while
 * the total stays under twice the budget; past that, the largest goes at once.
 */
import type { Socket } from "node:net";
import type { Logger } from "pino";

/** How long a connection must stay backed up, ms, before the budget cuts it (under twice the budget). */
export const GRACE_MS = 1000;

/** An HTTP response as counted here (node:http's ServerResponse). */
export interface QueuedResponse {
  /** Null while it waits behind an earlier response on its connection. */
  readonly socket: Socket | null;
  /** Its bytes not yet handed to the kernel (with its socket's, once it has one). */
  readonly writableLength: number;
  readonly writableFinished: boolean;
  once(event: "finish" | "close", listener: () => void): unknown;
}

/** One connection's unsent replies. */
class Held {
  /** Responses not yet finished, which may be waiting for the socket. */
  readonly queued = new Set<QueuedResponse>();
  /** When it became backed up (performance.now(), ms). */
  since = 0;

  constructor(readonly socket: Socket) {}

  /** Bytes it holds unsent: its socket's buffer and the bodies of responses still waiting for it. */
  get unsent(): number {
    let bytes = this.socket.writableLength;
    for (const res of this.queued) if (!res.socket) bytes += res.writableLength;
    return bytes;
  }

  /** Whether it holds more than a socket takes without complaint (its high-water mark). */
  get backedUp(): boolean {
    if (this.socket.writableNeedDrain) return true;
    for (const res of this.queued) if (!res.socket) return true;
    return false;
  }
}

/** The budget of unsent replies shared by every connection of both fronts (see the file's comment). */
export class UnreadReplies {
  readonly #backedUp = new Set<Held>();
  readonly #bySocket = new WeakMap<Socket, Held>();
  #recheck: NodeJS.Timeout | null = null;

  /** `max`: bytes, maxPendingBytes. */
  constructor(
    readonly max: number,
    readonly log: Logger,
  ) {}

  /**
   * Call after writing a reply on `socket`: a TCP frame, or an HTTP response `res` (which
   * may wait behind an earlier one). While the connection holds replies its client has
   * not read, they count against the budget; past it, the largest holders are cut.
   */
  wrote(socket: Socket, res?: QueuedResponse): void {
    // The common case costs two reads: a response on its socket, within the high-water mark.
    const waiting = res !== undefined && !res.socket && !res.writableFinished;
    if (socket.destroyed || (!waiting && !socket.writableNeedDrain)) return;
    const held = this.#heldFor(socket);
    if (waiting) {
      held.queued.add(res);
      const done = (): void => {
        if (held.queued.delete(res)) this.#settle(held);
      };
      res.once("finish", done);
      res.once("close", done);
    }
    if (!this.#backedUp.has(held)) {
      held.since = performance.now();
      this.#backedUp.add(held);
    }
    this.#cutWhileOver();
  }

  #heldFor(socket: Socket): Held {
    let held = this.#bySocket.get(socket);
    if (!held) {
      const created = new Held(socket);
      this.#bySocket.set(socket, created);
      socket.on("drain", () => this.#settle(created));
      socket.once("close", () => this.#backedUp.delete(created));
      held = created;
    }
    return held;
  }

  /** A socket drained or a queued response finished: off the list once nothing is backed up. */
  #settle(held: Held): void {
    if (!held.backedUp) this.#backedUp.delete(held);
  }

  /**
   * While over the budget, cuts the connection holding the most among those backed up for
   * GRACE_MS (among all of them past twice the budget); when none is due yet, looks again
   * once the first one will be.
   */
  #cutWhileOver(): void {
    let total = 0;
    for (const h of this.#backedUp) total += h.unsent;
    while (total > this.max) {
      const now = performance.now();
      const anyone = total > 2 * this.max;
      let worst: Held | null = null;
      let most = -1;
      let firstDue = Infinity;
      for (const h of this.#backedUp) {
        if (!anyone && now - h.since < GRACE_MS) {
          firstDue = Math.min(firstDue, h.since + GRACE_MS - now);
          continue;
        }
        const unsent = h.unsent;
        if (unsent > most) [worst, most] = [h, unsent];
      }
      if (!worst) {
        if (firstDue !== Infinity) this.#recheck ??= setTimeout(this.#recheckNow, Math.ceil(firstDue)).unref();
        return;
      }
      this.#backedUp.delete(worst);
      this.log.warn({ remote: worst.socket.remoteAddress, unsent: most, unreadTotal: total, limit: this.max }, "replies unread across connections over maxPendingBytes: cutting the connection holding the most");
      worst.socket.destroy();
      total -= most;
    }
  }

  readonly #recheckNow = (): void => {
    this.#recheck = null;
    this.#cutWhileOver();
  };
}
