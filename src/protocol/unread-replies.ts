/**
 * The replies a front's connections could not send yet (socket.writableLength: off the
 * heap, so the heap guard never sees them). A TCP connection is bounded on its own
 * (maxUnsentReplyBytes holds its waiting requests, but what is running still answers),
 * an HTTP connection by its one response at a time; a thousand clients that never read
 * would still each hold theirs. Past `max` bytes in all, the connection holding the most
 * is cut: its client is not reading them, and the others' replies are not held up for it.
 */
import type { Socket } from "node:net";
import type { Logger } from "pino";

export interface UnreadHolder {
  /** Reply bytes written and not yet taken by the kernel. */
  readonly unsent: number;
  /** Closes the connection at once (a reset), dropping its unsent replies. */
  cut(unreadTotal: number): void;
}

export const CUT_MESSAGE = "replies unread across connections over maxPendingBytes: cutting the connection holding the most";

export class UnreadReplies {
  readonly #backedUp = new Set<UnreadHolder>();
  readonly #sockets = new WeakMap<Socket, UnreadHolder>();

  constructor(
    readonly max: number,
    readonly log: Logger,
  ) {}

  /** `holder` has replies its client has not read: cuts the largest holders while over the budget. */
  backedUp(holder: UnreadHolder): void {
    this.#backedUp.add(holder);
    let total = 0;
    for (const h of this.#backedUp) total += h.unsent;
    while (total > this.max) {
      let worst: UnreadHolder | null = null;
      for (const h of this.#backedUp) if (!worst || h.unsent > worst.unsent) worst = h;
      if (!worst) return;
      this.#backedUp.delete(worst);
      const unsent = worst.unsent;
      worst.cut(total);
      total -= unsent;
    }
  }

  /** `holder` sent everything (drain) or closed. */
  drained(holder: UnreadHolder): void {
    this.#backedUp.delete(holder);
  }

  /** For a front that writes to plain sockets (HTTP): call after a reply was written; counts it while the socket holds it. */
  wroteTo(socket: Socket): void {
    if (!socket.writableNeedDrain || socket.destroyed) return;
    let holder = this.#sockets.get(socket);
    if (!holder) {
      const created: UnreadHolder = {
        get unsent() {
          return socket.writableLength;
        },
        cut: (unreadTotal) => {
          this.log.warn({ remote: socket.remoteAddress, unsent: socket.writableLength, unreadTotal, limit: this.max }, CUT_MESSAGE);
          socket.destroy();
        },
      };
      holder = created;
      this.#sockets.set(socket, created);
      socket.on("drain", () => this.drained(created));
      socket.once("close", () => this.drained(created));
    }
    this.backedUp(holder);
  }
}
