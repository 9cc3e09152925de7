/**
 * Helpers for the recovery tests: a real cluster serving test/fixtures/recovery with a
 * log capture, so tests can wait on what the primary logs (a crash, a restart) instead
 * of sleeping; a gate that holds a request on its node for exactly as long as a test
 * needs; and a check that every node serves.
 */
import { once } from "node:events";
import { createServer, type AddressInfo, type Server, type Socket } from "node:net";
import { fileURLToPath } from "node:url";
import pino, { type Logger } from "pino";
import { createCluster, type Cluster, type ClusterOptions } from "crew";

export const RECOVERY_HANDLERS = fileURLToPath(new URL("../fixtures/recovery", import.meta.url));

/** One parsed log line of the primary. */
export type LogLine = { msg: string; level: number } & Record<string, unknown>;

/** A pino logger that keeps every line, and lets a test await a line by msg and fields. */
export class LogCapture {
  readonly lines: LogLine[] = [];
  readonly logger: Logger;
  #waiters = new Set<() => void>();

  constructor(level = "info") {
    this.logger = pino({ level }, { write: (text: string) => this.#push(JSON.parse(text) as LogLine) });
  }

  /** The lines with this msg whose fields equal `fields`, from line index `from` on. */
  find(msg: string, fields: Record<string, unknown> = {}, from = 0): LogLine[] {
    return this.lines.slice(from).filter((line) => matches(line, msg, fields));
  }

  /**
   * Resolves with the first matching line at index `from` or later, already logged or
   * still to come. Take `from = logs.lines.length` before causing the event to skip
   * earlier ones.
   */
  async waitFor(msg: string, fields: Record<string, unknown> = {}, from = 0): Promise<LogLine> {
    return (await this.waitForCount(1, msg, fields, from))[0]!;
  }

  /**
   * Resolves with the first `count` matching lines from index `from` on. Rejects after
   * `timeoutMs` with the last lines, so a missing line fails the test with something to
   * read instead of running into the test timeout.
   */
  waitForCount(count: number, msg: string, fields: Record<string, unknown> = {}, from = 0, timeoutMs = 30_000): Promise<LogLine[]> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        const found = this.find(msg, fields, from);
        if (found.length < count) return false;
        this.#waiters.delete(check);
        clearTimeout(timer);
        resolve(found.slice(0, count));
        return true;
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(check);
        const last = this.lines.slice(-8).map((l) => JSON.stringify(l));
        reject(new Error(`not ${count} log lines ${JSON.stringify(msg)} ${JSON.stringify(fields)}; last lines:\n${last.join("\n")}`));
      }, timeoutMs);
      if (!check()) this.#waiters.add(check);
    });
  }

  #push(line: LogLine): void {
    this.lines.push(line);
    for (const check of [...this.#waiters]) check();
  }
}

function matches(line: LogLine, msg: string, fields: Record<string, unknown>): boolean {
  return line.msg === msg && Object.entries(fields).every(([k, v]) => line[k] === v);
}

export interface TestCluster {
  cluster: Cluster;
  logs: LogCapture;
  close(): Promise<void>;
}

/**
 * A cluster over the recovery fixtures, logging into a capture. A short drain, so a
 * failed test that leaves a request in flight does not hold the run for 30 s at close.
 */
export async function startCluster(options: ClusterOptions = {}): Promise<TestCluster> {
  const logs = new LogCapture();
  const cluster = await createCluster({ handlers: RECOVERY_HANDLERS, drainTimeoutMs: 1000, logger: logs.logger, ...options });
  return { cluster, logs, close: () => cluster.close() };
}

/** Runs `fn` with a fresh cluster, and always closes it. */
export async function withCluster<T>(options: ClusterOptions, fn: (t: TestCluster) => Promise<T>): Promise<T> {
  const t = await startCluster(options);
  try {
    return await fn(t);
  } finally {
    await t.close();
  }
}

/** Resolves once every node is up, waiting on the "node up" line of each one that is not. */
export async function allUp({ cluster, logs }: TestCluster): Promise<void> {
  const from = logs.lines.length;
  const waits = cluster.nodes.filter((n) => n.state !== "up").map((n) => logs.waitFor("node up", { node: n.id }, from));
  await Promise.all(waits);
}

/**
 * Sends waves of quick requests, one per node at once, each wave once every node is up,
 * until each node has answered one. Resolves with the node ids that answered; a node
 * that stays silent fails the caller's equality check instead of hanging.
 */
export async function nodesThatServe(t: TestCluster, maxWaves = 20): Promise<string[]> {
  const ids = t.cluster.nodes.map((n) => n.id);
  const seen = new Set<string>();
  for (let wave = 0; wave < maxWaves && seen.size < ids.length; wave++) {
    await allUp(t);
    const replies = await Promise.all(ids.map(() => t.cluster.call("nap", { ms: 0 })));
    for (const reply of replies) {
      if (!reply.ok) throw new Error(`a quick request failed: ${JSON.stringify(reply)}`);
      seen.add(reply.meta.node!);
    }
  }
  return [...seen].sort();
}

/** The ids of a cluster's nodes, sorted, to compare with nodesThatServe. */
export function nodeIds(cluster: Cluster): string[] {
  return cluster.nodes.map((n) => n.id).sort();
}

/** What a gate handler says when it has started on a node. */
export interface GateArrival {
  node: string;
  requestId: string;
  attempt: number;
  /** Lets the gate's request finish: its handler answers `said`. */
  open(said?: string): void;
}

/**
 * The test's end of the gate fixture: a TCP server the gate handler connects to from
 * inside its node. `arrival()` resolves when a gate request is running on a node.
 */
export class Gate {
  readonly #server: Server;
  readonly #arrivals: GateArrival[] = [];
  readonly #sockets = new Set<Socket>();
  #waiting: Array<(a: GateArrival) => void> = [];

  private constructor(server: Server) {
    this.#server = server;
    server.on("connection", (socket) => this.#onConnection(socket));
  }

  static async open(): Promise<Gate> {
    const server = createServer();
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    return new Gate(server);
  }

  get port(): number {
    return (this.#server.address() as AddressInfo).port;
  }

  /** The next gate request to reach a node. */
  arrival(): Promise<GateArrival> {
    const ready = this.#arrivals.shift();
    if (ready) return Promise.resolve(ready);
    return new Promise((resolve) => this.#waiting.push(resolve));
  }

  async close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    this.#server.close();
    await once(this.#server, "close");
  }

  #onConnection(socket: Socket): void {
    this.#sockets.add(socket);
    socket.on("close", () => this.#sockets.delete(socket));
    socket.on("error", () => {}); // a gate whose node was killed resets its socket
    socket.setEncoding("utf8");
    socket.once("data", (line: string) => {
      const hello = JSON.parse(line) as Omit<GateArrival, "open">;
      const arrival: GateArrival = { ...hello, open: (said = "go") => socket.write(said + "\n") };
      const waiter = this.#waiting.shift();
      if (waiter) waiter(arrival);
      else this.#arrivals.push(arrival);
    });
  }
}

/** 0 + 1 + … + (n - 1): what the steps handler returns as total. */
export function sumBelow(n: number): number {
  return (n * (n - 1)) / 2;
}
