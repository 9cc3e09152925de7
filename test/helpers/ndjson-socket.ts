/**
 * A raw NDJSON client on a real socket, for protocol-level tests that the typed Client
 * would hide: it sends any line or bytes (garbage, split frames, oversize frames),
 * records every reply frame in arrival order, and waits on replies or on 'close'.
 *
 * It splits lines itself (not through src/protocol/ndjson.ts), so the receiver is
 * checked against an independent reading of the protocol.
 */
import { EventEmitter } from "node:events";
import { connect, type Socket } from "node:net";

export type Id = string | number | null;

export interface ReplyFrame {
  id: Id;
  ok: boolean;
  result?: unknown;
  error?: { code: string; message: string };
  meta?: { node: string | null; attempts: number; ms: number };
}

export class NdjsonSocket {
  readonly socket: Socket;
  /** Every reply frame received, in arrival order. */
  readonly replies: ReplyFrame[] = [];
  /** Resolves when the socket has closed, from either side. */
  readonly closed: Promise<void>;
  #isClosed = false;
  #buffered = "";
  readonly #changed = new EventEmitter();

  private constructor(socket: Socket) {
    this.socket = socket;
    this.#changed.setMaxListeners(0);
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => this.#onData(chunk));
    // The server may reset a connection it refuses (frame too large): 'close' follows.
    socket.on("error", () => {});
    this.closed = new Promise((resolve) =>
      socket.once("close", () => {
        this.#isClosed = true;
        this.#changed.emit("change");
        resolve();
      }),
    );
  }

  static connect(port: number, host = "127.0.0.1"): Promise<NdjsonSocket> {
    return new Promise((resolve, reject) => {
      const socket = connect({ port, host, noDelay: true });
      socket.once("error", reject);
      socket.once("connect", () => {
        socket.off("error", reject);
        resolve(new NdjsonSocket(socket));
      });
    });
  }

  get isClosed(): boolean {
    return this.#isClosed;
  }

  /** Sends frames, one line each, in one write: an object as JSON, a string as it is. */
  send(...frames: unknown[]): void {
    this.socket.write(frames.map((f) => (typeof f === "string" ? f : JSON.stringify(f)) + "\n").join(""));
  }

  /** Writes bytes as they are (no newline added); resolves once they are handed to the kernel. */
  write(bytes: string | Buffer): Promise<void> {
    return new Promise((resolve, reject) => this.socket.write(bytes, (err) => (err ? reject(err) : resolve())));
  }

  /**
   * Resolves with `check()`'s value once it is defined, re-checking after every reply;
   * rejects if the connection closes first, so a missing reply fails fast instead of hanging.
   */
  until<T>(check: () => T | undefined, what = "the awaited replies"): Promise<T> {
    return new Promise((resolve, reject) => {
      const test = (): void => {
        const value = check();
        if (value === undefined && !this.#isClosed) return;
        this.#changed.off("change", test);
        if (value !== undefined) resolve(value);
        else reject(new Error(`connection closed before ${what} (${this.replies.length} replies: ${JSON.stringify(this.replies.slice(-3))})`));
      };
      this.#changed.on("change", test);
      test();
    });
  }

  /** Resolves with the first `count` replies once they have arrived. */
  waitForReplies(count: number): Promise<ReplyFrame[]> {
    return this.until(() => (this.replies.length >= count ? this.replies.slice(0, count) : undefined), `${count} replies`);
  }

  /** Resolves with the first reply carrying `id`, looking at replies from index `from` on. */
  waitForId(id: Id, from = 0): Promise<ReplyFrame> {
    const find = () => this.replies.slice(from).find((r) => r.id === id);
    return this.until(find, `the reply to ${JSON.stringify(id)}`);
  }

  /** Sends one frame and resolves with the reply to its id that arrives after it was sent. */
  request(frame: { id: Id } & Record<string, unknown>): Promise<ReplyFrame> {
    const from = this.replies.length;
    this.send(frame);
    return this.waitForId(frame.id, from);
  }

  /** A ping round trip: proves the connection is open and every earlier frame was read. */
  async ping(id: Id = `ping-${this.replies.length}-${Math.random()}`): Promise<ReplyFrame> {
    return this.request({ op: "ping", id });
  }

  /**
   * Hangs up (a reset: on the wire a FIN alone is a half-close, after which the client
   * still gets its replies) and resolves once the socket has closed.
   */
  async close(): Promise<void> {
    if (!this.socket.destroyed) this.socket.resetAndDestroy();
    await this.closed;
  }

  /** Half-closes: sends FIN (shutdown(SHUT_WR)), as `nc -q1` does, and keeps reading. */
  halfClose(): void {
    this.socket.end();
  }

  #onData(chunk: string): void {
    const lines = (this.#buffered + chunk).split("\n");
    this.#buffered = lines.pop() ?? "";
    for (const line of lines) this.replies.push(JSON.parse(line) as ReplyFrame);
    if (lines.length > 0) this.#changed.emit("change");
  }
}

/** Connections a test opened, closed after it whatever happened. */
export class SocketPool {
  readonly #sockets: NdjsonSocket[] = [];

  async open(port: number): Promise<NdjsonSocket> {
    const socket = await NdjsonSocket.connect(port);
    this.#sockets.push(socket);
    return socket;
  }

  async closeAll(): Promise<void> {
    await Promise.all(this.#sockets.splice(0).map((s) => s.close()));
  }
}
