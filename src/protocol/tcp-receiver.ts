/**
 * The TCP receiver: DESIGN.md's NDJSON protocol over plain sockets. Every connection
 * is bounded: a frame by maxFrameBytes (an unfinished line costs about its size, see
 * ndjson.ts), its requests in flight by maxConnectionInflight and by its fair share of
 * the queue (ClientShares), its unsent replies by TCP backpressure (the primary stops
 * reading from a client that does not read) and by maxUnsentReplyBytes (past it, the
 * client's requests still waiting are held, so they add no more replies), its idleness
 * by idleConnectionMs; the number of connections by maxConnections. And all of them
 * together: past maxPendingBytes of replies unsent across connections (the HTTP front's too), the
 * connection holding the most is cut (unread-replies.ts).
 *
 * A client that half-closes (shutdown(SHUT_WR), `nc -q1`) has sent everything: it still
 * gets every reply, and the socket closes after the last one. Only a real disconnect
 * cancels what the client had in flight. A connection the primary ends (a refusal, a
 * drain, idleness) sends its last line, then FIN, and keeps reading and dropping what
 * the client still sends for a moment, so the kernel never resets the connection
 * before the client has read that line.
 */
import { createServer, type AddressInfo, type Server, type Socket } from "node:net";
import type { Logger } from "pino";
import { BadRequestError, type CrewError, DuplicateIdError, OverloadedError } from "../errors.js";
import { type ClientShares, type ShareHolder, Throttle } from "../primary/admission.js";
import type { RequestSink as Dispatcher } from "../store/keyed.js";
import type { Job, Outcome } from "../primary/job.js";
import { encodeError, encodeReply, frameTooLarge, parseFrame, type RequestId, type RunFrame } from "./frames.js";
import { LineSplitter } from "./ndjson.js";
import type { UnreadReplies } from "./unread-replies.js";

/** How long an ended connection keeps reading (and dropping) before it is cut. */
const LINGER_MS = 2000;
/** While draining, a connection ends once it has been this quiet with nothing left to answer. */
const DRAIN_QUIET_MS = 50;

export interface TcpReceiverOptions {
  maxFrameBytes: number;
  maxConnectionInflight: number;
  maxConnections: number;
  idleConnectionMs: number;
  maxUnsentReplyBytes: number;
  /** The budget of replies unsent across connections, shared with the HTTP front. */
  unread: UnreadReplies;
  shares: ClientShares;
}

export class TcpReceiver {
  readonly #server: Server;
  readonly #connections = new Set<Connection>();

  constructor(dispatcher: Dispatcher, options: TcpReceiverOptions, log: Logger) {
    this.#server = createServer({ noDelay: true, allowHalfOpen: true }, (socket) => {
      if (this.#connections.size >= options.maxConnections) return refuseConnection(socket, options.maxConnections, log);
      const conn = new Connection(socket, dispatcher, options, log);
      this.#connections.add(conn);
      socket.once("close", () => this.#connections.delete(conn));
    });
    // A backstop for floods: past twice the cap, connections are dropped without a word.
    this.#server.maxConnections = options.maxConnections * 2;
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
   * Stops accepting connections; open ones keep being served (new requests answer
   * E_SHUTTING_DOWN once the cluster drains) until `destroyConnections`.
   */
  stopAccepting(): void {
    if (this.#server.listening) this.#server.close();
  }

  /** Ends every connection after its last reply; resolves when all have closed (at most ~LINGER_MS × 2). */
  destroyConnections(): Promise<void> {
    return Promise.all([...this.#connections].map((conn) => conn.drain())).then(() => {});
  }
}

const refusedConnections = new Throttle();

/** One connection over the cap: told why, then ended. */
function refuseConnection(socket: Socket, max: number, log: Logger): void {
  const skipped = refusedConnections.take();
  if (skipped >= 0) log.warn({ remote: socket.remoteAddress, maxConnections: max, alsoRefused: skipped }, "connection refused: too many connections");
  socket.on("error", () => {});
  endAfter(socket, encodeError(null, new OverloadedError(`over ${max} connections: retry later`)));
}

/** Writes `last`, sends FIN, drops whatever the client still sends, and cuts the connection after LINGER_MS. */
function endAfter(socket: Socket, last?: string): void {
  if (socket.destroyed) return;
  if (last === undefined) socket.end();
  else socket.end(last);
  socket.removeAllListeners("data");
  socket.on("data", () => {});
  socket.resume();
  setTimeout(() => socket.destroy(), LINGER_MS).unref();
}

class Connection implements ShareHolder {
  readonly #socket: Socket;
  readonly #dispatcher: Dispatcher;
  readonly #options: TcpReceiverOptions;
  readonly #log: Logger;
  readonly #splitter: LineSplitter;
  readonly #inflight = new Map<RequestId, Job>();
  readonly #closed: Promise<void>;
  #out: string[] = [];
  #writeBlocked = false;
  /** Waiting requests are held: the client has over maxUnsentReplyBytes of replies unread. */
  #holding = false;
  /** The client half-closed: it sends nothing more, and waits for its replies. */
  #peerEnded = false;
  /** The cluster is closing: end once everything read has been answered. */
  #draining = false;
  #quietTimer: NodeJS.Timeout | null = null;
  #ending = false;
  #isClosed = false;

  constructor(socket: Socket, dispatcher: Dispatcher, options: TcpReceiverOptions, log: Logger) {
    this.#socket = socket;
    this.#dispatcher = dispatcher;
    this.#options = options;
    this.#log = log;
    this.#splitter = new LineSplitter(
      options.maxFrameBytes,
      (line) => this.#onLine(line),
      () => this.#onNotUtf8(),
    );
    socket.on("data", (chunk: Buffer) => this.#onData(chunk));
    socket.on("drain", () => this.#onDrain());
    socket.on("end", () => {
      this.#peerEnded = true;
      this.#endIfDone();
    });
    socket.on("error", () => {}); // 'close' follows; a reset client is not the primary's problem
    this.#closed = new Promise((resolve) => socket.once("close", resolve));
    socket.once("close", () => this.#onClose());
    if (options.idleConnectionMs > 0) {
      socket.setTimeout(options.idleConnectionMs, () => {
        if (this.#inflight.size > 0 || this.#ending) return; // a long request is not idleness
        this.#log.debug({ remote: socket.remoteAddress, idleMs: options.idleConnectionMs }, "idle connection closed");
        this.#end();
      });
    }
  }

  /** The cluster is closing: answer what the client already sent (E_SHUTTING_DOWN), then end. */
  drain(): Promise<void> {
    this.#draining = true;
    this.#flush();
    this.#endIfDone();
    setTimeout(() => this.#end(), LINGER_MS).unref();
    return this.#closed;
  }

  #onData(chunk: Buffer): void {
    if (this.#draining) this.#quiet();
    if (this.#splitter.push(chunk)) return;
    this.#tooLarge();
  }

  #tooLarge(): void {
    this.#log.warn({ remote: this.#socket.remoteAddress, limit: this.#options.maxFrameBytes }, "frame too large: closing connection");
    this.#refuse(null, "", frameTooLarge("frame", this.#options.maxFrameBytes));
    // The error goes out first, then FIN; a client that keeps its side open would keep
    // its requests running, so the connection is cut after the linger ('close' cancels them).
    this.#end();
  }

  #onLine(line: string): void {
    if (this.#isClosed || this.#ending) return;
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

  /** Nothing in a frame that is not UTF-8 can be trusted, its id included: answered with id null. */
  #onNotUtf8(): void {
    if (this.#isClosed || this.#ending) return;
    this.#refuse(null, "", new BadRequestError("frame is not valid UTF-8"));
  }

  #run(frame: RunFrame): void {
    const id = frame.id;
    if (this.#inflight.has(id)) {
      return this.#refuse(id, frame.handler, new DuplicateIdError(`id ${JSON.stringify(id)} is already in flight on this connection`));
    }
    if (this.#dispatcher.queueFull) this.#options.shares.makeRoom(this);
    let job: Job | null = null;
    job = this.#dispatcher.submit(frame, (outcome: Outcome) => {
      if (job && this.#inflight.get(id) === job) this.#forget(id);
      this.#send(encodeReply(id, outcome));
      this.#resumeIfRoom();
    });
    if (!job || job.state === "done") return;
    if (this.#inflight.size === 0) this.#options.shares.started(this);
    this.#inflight.set(id, job);
    if (this.#holding) this.#dispatcher.hold([job]);
    if (this.#inflight.size >= this.#options.maxConnectionInflight) this.#pauseReading();
  }

  #forget(id: RequestId): void {
    this.#inflight.delete(id);
    if (this.#inflight.size === 0) this.#options.shares.stopped(this);
  }

  get inflight(): number {
    return this.#inflight.size;
  }

  /** Gives up this connection's newest waiting request to a client under its share of a full queue. */
  evictOne(): boolean {
    let newest: Job | null = null;
    for (const job of this.#inflight.values()) if (job.state === "queued" || job.state === "held") newest = job;
    if (!newest) return false;
    return this.#dispatcher.shed(newest, new OverloadedError("queue full, and this connection holds more than its share of it: retry later"));
  }

  /** Answers a frame that never became a request, and counts it like the dispatcher's refusals. */
  #refuse(id: RequestId | null, handler: string, error: CrewError): void {
    this.#dispatcher.noteRefused(handler, error.code);
    this.#send(encodeError(id, error));
  }

  /** Queues a reply; replies that finish in the same turn of the event loop leave in one write. */
  #send(text: string): void {
    if (this.#isClosed) return;
    if (this.#out.push(text) === 1) setImmediate(this.#flush);
  }

  readonly #flush = (): void => {
    if (this.#out.length === 0 || this.#isClosed || this.#socket.writableEnded) return;
    const text = this.#out.length === 1 ? this.#out[0]! : this.#out.join("");
    this.#out = [];
    if (!this.#socket.write(text)) {
      this.#writeBlocked = true;
      this.#pauseReading();
      if (!this.#holding && this.#socket.writableLength > this.#options.maxUnsentReplyBytes) {
        this.#holding = true;
        this.#log.debug({ remote: this.#socket.remoteAddress, unsent: this.#socket.writableLength }, "client not reading its replies: holding its waiting requests");
        this.#dispatcher.hold(this.#inflight.values());
      }
      this.#options.unread.wrote(this.#socket);
    }
    this.#endIfDone();
  };

  #onDrain(): void {
    this.#writeBlocked = false;
    if (this.#holding) {
      this.#holding = false;
      this.#dispatcher.release(this.#inflight.values());
    }
    this.#resumeIfRoom();
    this.#endIfDone();
  }

  #pauseReading(): void {
    this.#splitter.pause();
    this.#socket.pause();
  }

  #resumeIfRoom(): void {
    if (this.#isClosed || this.#ending || this.#writeBlocked || this.#splitter.overflowed) return;
    if (this.#inflight.size >= this.#options.maxConnectionInflight) return;
    if (!this.#splitter.resume()) return this.#tooLarge();
    if (!this.#splitter.paused && this.#socket.isPaused()) this.#socket.resume();
  }

  /** Ends the connection once nothing is left to answer, if the client half-closed or the cluster drains. */
  #endIfDone(): void {
    if (!this.#peerEnded && !this.#draining) return;
    if (this.#inflight.size > 0 || this.#out.length > 0 || this.#splitter.paused || this.#ending) return;
    if (this.#peerEnded) return this.#end();
    this.#quiet(); // draining: a frame may still be on its way; end once the client is quiet
  }

  #quiet(): void {
    if (this.#quietTimer) clearTimeout(this.#quietTimer);
    this.#quietTimer = setTimeout(() => {
      this.#quietTimer = null;
      if (this.#inflight.size === 0 && this.#out.length === 0) this.#end();
    }, DRAIN_QUIET_MS);
    this.#quietTimer.unref();
  }

  #end(): void {
    if (this.#ending || this.#isClosed) return;
    this.#ending = true;
    const last = this.#out.join("");
    this.#out = [];
    endAfter(this.#socket, last === "" ? undefined : last);
  }

  /** A client that hangs up cancels what it had in flight: nobody is left to answer. */
  #onClose(): void {
    this.#isClosed = true;
    this.#out = [];
    if (this.#quietTimer) clearTimeout(this.#quietTimer);
    const jobs = [...this.#inflight.values()];
    if (jobs.length === 0) return;
    this.#inflight.clear();
    this.#options.shares.stopped(this);
    this.#log.debug({ remote: this.#socket.remoteAddress, cancelled: jobs.length, requestIds: jobs.map((j) => j.requestId).slice(0, 20) }, "client disconnected: cancelling its requests");
    // hangUp cancels them, except keyed requests: their client may come back for the reply.
    for (const job of jobs) this.#dispatcher.hangUp(job);
  }
}
