/**
 * The TCP receiver: DESIGN.md's NDJSON protocol over plain sockets. Every connection
 * is bounded: a frame by maxFrameBytes, its requests in flight by
 * maxConnectionInflight, its unsent replies by TCP backpressure (the primary stops
 * reading from a client that does not read).
 */
import { createServer, type AddressInfo, type Server, type Socket } from "node:net";
import type { Logger } from "pino";
import { CancelledError, type CrewError, DuplicateIdError, FrameTooLargeError } from "../errors.js";
import type { Job, Outcome } from "../primary/job.js";
import type { RequestSink } from "../primary/request-sink.js";
import { encodeError, encodeReply, parseFrame, type RequestId, type RunFrame } from "./frames.js";
import { LineSplitter } from "./ndjson.js";

/** How long a closing connection may take to hand its last replies to a slow reader. */
const CLOSE_GRACE_MS = 2000;

export interface TcpReceiverOptions {
  maxFrameBytes: number;
  maxConnectionInflight: number;
  maxConnections: number;
}

export class TcpReceiver {
  readonly #server: Server;
  readonly #connections = new Set<Connection>();

  constructor(dispatcher: RequestSink, options: TcpReceiverOptions, log: Logger) {
    this.#server = createServer({ noDelay: true }, (socket) => {
      const conn = new Connection(socket, dispatcher, options, log);
      this.#connections.add(conn);
      socket.once("close", () => this.#connections.delete(conn));
    });
    this.#server.maxConnections = options.maxConnections;
  }

  listen(port: number, host: string): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.#server.once("error", reject);
      this.#server.listen(port, host, () => {
        this.#server.off("error", reject);
        resolve(this.#server.address() as AddressInfo);
      });
    });
  }

  /**
   * Stops accepting connections; open ones keep being served until `destroyConnections`.
   * (server.close's own callback waits for every connection to end, so it is not awaited here.)
   */
  stopAccepting(): void {
    if (this.#server.listening) this.#server.close();
  }

  destroyConnections(): void {
    for (const conn of this.#connections) conn.destroy();
  }
}

class Connection {
  readonly #socket: Socket;
  readonly #dispatcher: RequestSink;
  readonly #options: TcpReceiverOptions;
  readonly #log: Logger;
  readonly #splitter: LineSplitter;
  readonly #inflight = new Map<RequestId, Job>();
  #out: string[] = [];
  #writeBlocked = false;
  #closed = false;

  constructor(socket: Socket, dispatcher: RequestSink, options: TcpReceiverOptions, log: Logger) {
    this.#socket = socket;
    this.#dispatcher = dispatcher;
    this.#options = options;
    this.#log = log;
    this.#splitter = new LineSplitter(options.maxFrameBytes, (line) => this.#onLine(line));
    socket.on("data", (chunk: Buffer) => this.#onData(chunk));
    socket.on("drain", () => {
      this.#writeBlocked = false;
      this.#resumeIfRoom();
    });
    socket.on("error", () => {}); // 'close' follows; a reset client is not the primary's problem
    socket.on("close", () => this.#onClose());
  }

  /** Ends the connection after its last replies; one whose client will not read them goes after a grace period. */
  destroy(): void {
    this.#flush();
    this.#socket.end();
    setTimeout(() => this.#socket.destroy(), CLOSE_GRACE_MS).unref();
  }

  #onData(chunk: Buffer): void {
    if (this.#splitter.push(chunk)) return;
    this.#log.warn({ remote: this.#socket.remoteAddress, limit: this.#options.maxFrameBytes }, "frame too large: closing connection");
    this.#refuse(null, "", new FrameTooLargeError(`frame over the limit of ${this.#options.maxFrameBytes} bytes`));
    this.#flush();
    // Half-closing is not enough: a client that keeps its side open would keep its
    // requests running. Once the error is out, the connection goes (and 'close' cancels them).
    this.#socket.pause();
    this.#socket.end(() => this.#socket.destroy());
  }

  #onLine(line: string): void {
    if (this.#closed) return;
    const parsed = parseFrame(line);
    if ("error" in parsed) return this.#refuse(parsed.id, "", parsed.error);
    const frame = parsed.frame;
    switch (frame.op) {
      case "ping":
        return this.#send(`{"id":${JSON.stringify(frame.id)},"ok":true,"result":"pong"}\n`);
      case "cancel": {
        const job = this.#inflight.get(frame.id);
        if (job) this.#dispatcher.cancel(job);
        return;
      }
      case "run":
        return this.#run(frame);
    }
  }

  #run(frame: RunFrame): void {
    const id = frame.id;
    if (this.#inflight.has(id)) {
      return this.#refuse(id, frame.handler, new DuplicateIdError(`id ${JSON.stringify(id)} is already in flight on this connection`));
    }
    let job: Job | null = null;
    job = this.#dispatcher.submit(frame, (outcome: Outcome) => {
      if (job && this.#inflight.get(id) === job) this.#inflight.delete(id);
      this.#send(encodeReply(id, outcome));
      this.#resumeIfRoom();
    });
    if (job && job.state !== "done") {
      this.#inflight.set(id, job);
      if (this.#inflight.size >= this.#options.maxConnectionInflight) this.#socket.pause();
    }
  }

  /** Answers a frame that never became a request, and counts it like the dispatcher's refusals. */
  #refuse(id: RequestId | null, handler: string, error: CrewError): void {
    this.#dispatcher.noteRefused(handler, error.code);
    this.#send(encodeError(id, error));
  }

  /** Queues a reply; replies that finish in the same turn of the event loop leave in one write. */
  #send(text: string): void {
    if (this.#closed) return;
    if (this.#out.push(text) === 1) setImmediate(this.#flush);
  }

  readonly #flush = (): void => {
    if (this.#out.length === 0 || this.#closed) return;
    const text = this.#out.length === 1 ? this.#out[0]! : this.#out.join("");
    this.#out = [];
    if (!this.#socket.write(text)) {
      this.#writeBlocked = true;
      this.#socket.pause();
    }
  };

  #resumeIfRoom(): void {
    if (this.#closed || this.#writeBlocked || this.#splitter.overflowed) return;
    if (this.#inflight.size < this.#options.maxConnectionInflight && this.#socket.isPaused()) this.#socket.resume();
  }

  /** A client that hangs up cancels what it had in flight: nobody is left to answer. */
  #onClose(): void {
    this.#closed = true;
    this.#out = [];
    const jobs = [...this.#inflight.values()];
    this.#inflight.clear();
    for (const job of jobs) this.#dispatcher.cancel(job, new CancelledError("client disconnected"));
  }
}
