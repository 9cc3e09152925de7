/**
 * One client socket to a cluster: connect with a deadline, batched writes that respect
 * backpressure, and replies checked before the Client sees them.
 */
import { connect as netConnect, type Socket } from "node:net";
import { ConnectionError, type CrewError, type WireError } from "../errors.js";
import { hostPort } from "./address.js";
import type { Reply } from "./frames.js";
import { LineSplitter } from "./ndjson.js";

export interface ConnectionOptions {
  host: string;
  port: number;
  maxFrameBytes: number;
  connectTimeoutMs: number;
}

export interface ConnectionEvents {
  reply(reply: Reply): void;
  /** Called once, synchronously from destroy or from the socket's error/close. */
  lost(error: CrewError): void;
}

/** One socket: connect with a deadline, batched writes that respect backpressure, checked replies. */
export class Connection {
  readonly #socket: Socket;
  readonly #address: string;
  readonly #events: ConnectionEvents;
  readonly #splitter: LineSplitter;
  #queue: string[] = [];
  #flushScheduled = false;
  #writable = false; // false while connecting and while the socket waits for 'drain'
  #open = false;
  /** The server broke the protocol (not a reply frame, one too large): not worth reconnecting to. */
  violated = false;
  #lost: CrewError | undefined;
  #resolveOpened!: () => void;
  #rejectOpened!: (error: Error) => void;
  /** Resolves once connected; rejects with the ConnectionError if it never connects. */
  readonly opened = new Promise<void>((resolve, reject) => {
    this.#resolveOpened = resolve;
    this.#rejectOpened = reject;
  });

  constructor(options: ConnectionOptions, events: ConnectionEvents) {
    this.opened.catch(() => {}); // most callers never look: their requests fail instead
    this.#address = hostPort(options.host, options.port);
    this.#events = events;
    this.#splitter = new LineSplitter(options.maxFrameBytes, (line) => this.#line(line));
    // We batch frames ourselves, so Nagle's delay would only add latency.
    const socket = netConnect({ host: options.host, port: options.port, noDelay: true });
    this.#socket = socket;
    socket.setTimeout(options.connectTimeoutMs, () => {
      this.destroy(new ConnectionError(`could not connect to ${this.#address} within ${options.connectTimeoutMs} ms`));
    });
    socket.once("connect", () => this.#onConnect());
    socket.on("data", (chunk: Buffer) => {
      if (!this.#splitter.push(chunk)) {
        this.violated = true;
        this.destroy(new ConnectionError(`${this.#address} sent a reply over maxFrameBytes (${options.maxFrameBytes})`));
      }
    });
    socket.on("drain", () => {
      this.#writable = true;
      this.#flush();
    });
    socket.on("error", (err) => this.#lose(this.#failure(err.message, err)));
    socket.on("close", () => this.#lose(this.#failure("the server closed the connection")));
  }

  /**
   * Queues a frame. Frames queued in the same turn of the event loop go out in one write:
   * a load generator pipelining thousands of requests must not pay a syscall per frame.
   * setImmediate rather than a microtask, so frames sent from many promise continuations
   * (each reply's caller issuing its next request) still share one write.
   */
  send(line: string): void {
    if (this.#lost) return;
    this.#queue.push(line);
    if (this.#writable && !this.#flushScheduled) {
      this.#flushScheduled = true;
      setImmediate(() => this.#flush());
    }
  }

  /**
   * Ends the connection for good: sends what is queued (a cancel queued just before must
   * reach the server), then drops the socket and fails what waits on it. Resolves once
   * the socket has closed: at once when nothing is queued or it cannot be written, else
   * once the queue is written, or after `flushMs` (a server that stopped reading).
   */
  close(error: CrewError, flushMs = 1000): Promise<void> {
    if (this.#lost || !this.#writable || this.#queue.length === 0) return this.destroy(error);
    const data = this.#queue.join("");
    this.#queue = [];
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        void this.destroy(error).then(resolve);
      };
      const timer = setTimeout(done, flushMs);
      this.#socket.end(data, done);
    });
  }

  /** Drops the socket and fails what waits on it; resolves once the socket has closed. */
  destroy(error: CrewError): Promise<void> {
    const closed = this.#socket.closed ? Promise.resolve() : new Promise<void>((r) => this.#socket.once("close", r));
    this.#socket.destroy();
    this.#lose(error);
    return closed;
  }

  #onConnect(): void {
    this.#socket.setTimeout(0); // the deadline was for connecting; idle connections are fine
    this.#open = true;
    this.#writable = true;
    this.#resolveOpened();
    this.#flush();
  }

  #flush(): void {
    this.#flushScheduled = false;
    if (!this.#writable || this.#lost || this.#queue.length === 0) return;
    const data = this.#queue.length === 1 ? this.#queue[0]! : this.#queue.join("");
    this.#queue = [];
    // The queue is bounded by what callers have in flight, so waiting for 'drain' is safe.
    if (!this.#socket.write(data)) this.#writable = false;
  }

  #line(line: string): void {
    if (this.#lost) return;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      value = undefined;
    }
    // A line we cannot read may have been some request's reply; dropping the connection
    // fails that request now instead of leaving it waiting forever.
    if (!isReply(value)) {
      // An HTTP server answers NDJSON with "HTTP/1.1 400 Bad Request": say which port this is.
      const http = line.startsWith("HTTP/") ? ": it answered HTTP, so that is an HTTP port (crew's HTTP front?), not the cluster's TCP port" : "";
      this.violated = true;
      this.destroy(new ConnectionError(`${this.#address} sent a line that is not a reply frame${http}`));
      return;
    }
    this.#events.reply(value);
  }

  #failure(reason: string, cause?: Error): CrewError {
    const message = this.#open
      ? `connection to ${this.#address} lost: ${reason}`
      : `could not connect to ${this.#address}: ${reason}`;
    return new ConnectionError(message, cause ? { cause } : undefined);
  }

  #lose(error: CrewError): void {
    if (this.#lost) return;
    this.#lost = error;
    this.#queue = [];
    this.#socket.destroy();
    this.#rejectOpened(error); // no effect once opened
    this.#events.lost(error);
  }
}

function isReply(value: unknown): value is Reply {
  if (typeof value !== "object" || value === null) return false;
  const { id, ok, error } = value as Record<string, unknown>;
  if (id !== null && typeof id !== "string" && typeof id !== "number") return false;
  if (ok === true) return true;
  const e = error as Partial<WireError> | null | undefined;
  return ok === false && typeof e?.code === "string" && typeof e.message === "string";
}
