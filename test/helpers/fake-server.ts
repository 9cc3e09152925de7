/**
 * A tiny NDJSON server on a real socket (127.0.0.1, port 0) that stands in for the
 * primary in client tests. It records every frame it receives and lets each test decide
 * the replies through `onFrame`: echo (the default), hold and answer out of order, answer
 * with error frames or garbage, drop the connection.
 *
 * It splits lines itself rather than reusing src/protocol/ndjson.ts, so the client is
 * checked against an independent reading of the protocol.
 */
import { EventEmitter } from "node:events";
import { createServer, type AddressInfo, type Server, type Socket } from "node:net";

export type Frame = Record<string, unknown>;
export type FrameHandler = (frame: Frame, connection: FakeConnection) => void;

export class FakeConnection {
  readonly socket: Socket;
  /** The frames received on this connection, in order. */
  readonly frames: Frame[] = [];
  /** Resolves when the socket has closed, from either side. */
  readonly closed: Promise<void>;

  constructor(socket: Socket) {
    this.socket = socket;
    this.closed = new Promise((resolve) => socket.once("close", () => resolve()));
  }

  /** Writes one line: an object as JSON, a string as it is (for garbage). */
  send(frame: unknown): void {
    this.socket.write((typeof frame === "string" ? frame : JSON.stringify(frame)) + "\n");
  }

  drop(): void {
    this.socket.destroy();
  }
}

/** Answers a run with its payload and a ping with "pong", as the real primary would. */
export const echo: FrameHandler = (frame, connection) => {
  if (frame.op === "cancel") return;
  const result = frame.op === "ping" ? "pong" : (frame.payload ?? null);
  connection.send({ id: frame.id, ok: true, result });
};

export class FakeServer {
  /** Every frame received, across connections, in arrival order. */
  readonly frames: Frame[] = [];
  readonly connections: FakeConnection[] = [];
  onFrame: FrameHandler;
  /** Runs for each new connection before any of its data is read (e.g. to pause it). */
  onConnection: (connection: FakeConnection) => void = () => {};
  readonly #server: Server;
  readonly #changed = new EventEmitter();

  private constructor(onFrame: FrameHandler) {
    this.onFrame = onFrame;
    this.#server = createServer((socket) => this.#accept(socket));
    this.#changed.setMaxListeners(0);
  }

  static async start(onFrame: FrameHandler = echo): Promise<FakeServer> {
    const server = new FakeServer(onFrame);
    await new Promise<void>((resolve, reject) => {
      server.#server.once("error", reject);
      server.#server.listen(0, "127.0.0.1", () => resolve());
    });
    return server;
  }

  get port(): number {
    return (this.#server.address() as AddressInfo).port;
  }

  /** Resolves with `check()`'s value once it is defined, re-checking after every frame and connection. */
  until<T>(check: () => T | undefined): Promise<T> {
    return new Promise((resolve) => {
      const test = (): void => {
        const value = check();
        if (value === undefined) return;
        this.#changed.off("change", test);
        resolve(value);
      };
      this.#changed.on("change", test);
      test();
    });
  }

  /** Resolves once `count` frames have arrived in all. */
  waitForFrames(count: number): Promise<Frame[]> {
    return this.until(() => (this.frames.length >= count ? this.frames.slice(0, count) : undefined));
  }

  /** Resolves with the `n`th connection (1-based) once it has been accepted. */
  waitForConnection(n: number): Promise<FakeConnection> {
    return this.until(() => this.connections[n - 1]);
  }

  async close(): Promise<void> {
    for (const c of this.connections) c.drop();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #accept(socket: Socket): void {
    const connection = new FakeConnection(socket);
    this.connections.push(connection);
    socket.on("error", () => {}); // the client may reset the connection; that is its right
    this.onConnection(connection);
    let buffered = "";
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      const lines = (buffered + chunk).split("\n");
      buffered = lines.pop() ?? "";
      for (const line of lines) this.#receive(JSON.parse(line) as Frame, connection);
    });
    this.#changed.emit("change");
  }

  #receive(frame: Frame, connection: FakeConnection): void {
    this.frames.push(frame);
    connection.frames.push(frame);
    this.onFrame(frame, connection);
    this.#changed.emit("change");
  }
}

/** A port with nothing listening on it: bound, noted, and released. */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
