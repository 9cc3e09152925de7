/**
 * The TCP client of DESIGN.md's wire protocol. One connection carries any number of
 * pipelined requests; ids are numbers the client counts up, and replies are matched by
 * id in whatever order they come.
 *
 * `Connection` (connection.ts) owns one socket: connecting, framing, batched writes,
 * backpressure and checking what comes back. `Client` owns the requests: ids, the in-flight table, abort,
 * and turning replies into results or coded errors. A lost connection rejects what was
 * in flight on it and is replaced lazily by the next request.
 *
 * With `resubmit: true` every call carries an idempotency key (its own, or a random
 * UUID), and a lost connection rejects nothing: the client reconnects with backoff (to
 * the next of `hosts`, when given) and sends its unanswered calls again with their keys,
 * until each call's deadline. The primary joins or replays them (DESIGN.md, "Idempotency
 * keys and the journal"), so a call survives a restart of its primary.
 */
import {
  CancelledError,
  ConnectionError,
  errorFromWire,
  type CrewError,
  type WireError,
} from "../errors.js";
import type { Reply, ReplyMeta } from "./frames.js";
import { randomUUID } from "node:crypto";
import { type ClientOptions, fillOptions, type FilledOptions } from "./client-options.js";
import { Failover } from "./failover.js";
import { Connection } from "./connection.js";

export type { ClientOptions } from "./client-options.js";

export interface RunOptions {
  key?: string;
  /** DESIGN.md's idempotency key (1 to 256 characters): joins or replays the run with the same key. */
  idempotencyKey?: string;
  timeoutMs?: number;
  priority?: number;
  signal?: AbortSignal;
}

export interface CallResult {
  ok: boolean;
  result?: unknown;
  error?: { code: string; message: string };
  meta?: ReplyMeta;
}

/** What `run` rejects with for an error reply: the coded class, plus the reply's meta. */
export type ReplyError = CrewError & { meta?: ReplyMeta };

interface Pending {
  resolve: (reply: Reply) => void;
  reject: (error: Error) => void;
  signal: AbortSignal | undefined;
  /** With resubmit: the frame, sent again after a reconnect until `deadline` (performance.now() ms). */
  line: string;
  deadline: number;
  /** A run without an idempotency key: close() asks the server to cancel it. */
  cancellable: boolean;
}

/** The requests one signal can abort, and the single listener that aborts them. */
interface Watch {
  ids: Set<number>;
  onAbort: () => void;
}

export class Client {
  readonly #options: FilledOptions;
  readonly #pending = new Map<number, Pending>();
  readonly #watches = new Map<AbortSignal, Watch>();
  #connection: Connection | undefined;
  #nextId = 1;
  #closed = false;
  readonly #failover: Failover;
  #reconnectTimer: NodeJS.Timeout | null = null;
  /** The primary refused a frame of this connection as too large (id null), and closes it next. */
  #tooLarge: { connection: Connection; error: CrewError } | undefined;

  constructor(options: ClientOptions = {}) {
    this.#options = fillOptions(options);
    this.#failover = new Failover(this.#options.addresses);
  }

  /** Opens the connection now; run, call and ping also open it on demand. */
  connect(): Promise<void> {
    if (this.#closed) return Promise.reject(closedError());
    return this.#connect().opened;
  }

  /**
   * Resolves with the handler's result; rejects with the reply's coded error (`ReplyError`).
   * `T` is the result's type as the caller knows it (not checked at run time).
   */
  async run<T = unknown>(handler: string, payload?: unknown, options: RunOptions = {}): Promise<T> {
    const reply = await this.#request(this.#runFrame(handler, payload, options), options.signal, options.timeoutMs);
    if (reply.ok) return reply.result as T;
    throw replyError(reply.error, reply.meta);
  }

  /** Like run, but an error reply is returned, not thrown: no exceptions on a load generator's hot path. */
  call(handler: string, payload?: unknown, options: RunOptions = {}): Promise<CallResult> {
    return this.#request(this.#runFrame(handler, payload, options), options.signal, options.timeoutMs).then(toCallResult);
  }

  async ping(): Promise<void> {
    const reply = await this.#request({ op: "ping", id: this.#nextId++ }, undefined, undefined);
    if (!reply.ok) throw replyError(reply.error, reply.meta);
  }

  get inFlight(): number {
    return this.#pending.size;
  }

  /**
   * Ends the connection for good: in-flight requests reject, and later ones too. The
   * server is told to cancel those without an idempotency key (nobody will read their
   * replies, and a server keeps answering a client that only half-closed); keyed ones run
   * on, and their key fetches the reply later.
   */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#reconnectTimer) clearTimeout(this.#reconnectTimer);
    for (const [id, p] of this.#pending) if (p.cancellable) this.#connection?.send(`{"op":"cancel","id":${id}}\n`);
    this.#failPending(closedError());
    await this.#connection?.close(closedError());
  }

  #runFrame(handler: string, payload: unknown, options: RunOptions): RunWireFrame {
    const frame = runFrame(this.#nextId++, handler, payload, options);
    if (this.#options.resubmit) frame.idempotencyKey ??= randomUUID();
    return frame;
  }

  #request(frame: RunWireFrame | PingWireFrame, signal: AbortSignal | undefined, timeoutMs: number | undefined): Promise<Reply> {
    if (this.#closed) return Promise.reject(closedError());
    if (signal?.aborted) return Promise.reject(cancelledError(signal));
    let line: string;
    try {
      line = JSON.stringify(frame) + "\n";
    } catch (err) {
      return Promise.reject(err); // a payload JSON cannot hold (BigInt, cycles): nothing is sent
    }
    // A resubmitting client waiting out its backoff sends the call with the others when it reconnects.
    const connection = this.#reconnectTimer ? undefined : this.#connect();
    const { id } = frame;
    return new Promise<Reply>((resolve, reject) => {
      const deadline = performance.now() + (timeoutMs ?? this.#options.resubmitTimeoutMs);
      const cancellable = "handler" in frame && frame.idempotencyKey === undefined;
      this.#pending.set(id, { resolve, reject, signal, line, deadline, cancellable });
      if (signal) this.#watch(signal, id);
      connection?.send(line); // none while a resubmitting client waits to reconnect: sent then
    });
  }

  /** The current connection, or a new one: a lost connection is only replaced when needed. */
  #connect(): Connection {
    if (this.#connection) return this.#connection;
    const address = this.#failover.current();
    const connection = new Connection({ ...this.#options, ...address }, {
      reply: (reply) => this.#settle(reply),
      lost: (error) => this.#lost(connection, error),
    });
    this.#connection = connection;
    if (this.#options.resubmit) connection.opened.then(() => this.#failover.opened(), () => {});
    return connection;
  }

  #settle(reply: Reply): void {
    // A draining primary's E_SHUTTING_DOWN: its connection closes next, and the call is sent again.
    if (this.#options.resubmit && !reply.ok && reply.error.code === "E_SHUTTING_DOWN" && typeof reply.id === "number") return;
    if (typeof reply.id === "number") {
      // Nothing pending: the late answer to a request the caller already aborted.
      this.#take(reply.id)?.resolve(reply);
    } else if (reply.id === null && !reply.ok) {
      const error = errorFromWire(reply.error);
      if (error.code === "E_FRAME_TOO_LARGE" && this.#connection) this.#tooLarge = { connection: this.#connection, error };
      this.#options.onProtocolError?.(error);
    } // a string id is none of ours: this client only sends numbers
  }

  #take(id: number): Pending | undefined {
    const pending = this.#pending.get(id);
    if (!pending) return undefined;
    this.#pending.delete(id);
    if (pending.signal) this.#unwatch(pending.signal, id);
    return pending;
  }

  /**
   * One abort listener per signal, however many requests share it: a load generator that
   * stops all its calls with one signal must not trip Node's MaxListenersExceededWarning.
   */
  #watch(signal: AbortSignal, id: number): void {
    let watch = this.#watches.get(signal);
    if (!watch) {
      const ids = new Set<number>();
      const onAbort = (): void => {
        this.#watches.delete(signal);
        for (const aborted of ids) this.#abort(aborted, signal);
      };
      watch = { ids, onAbort };
      this.#watches.set(signal, watch);
      signal.addEventListener("abort", onAbort, { once: true });
    }
    watch.ids.add(id);
  }

  #unwatch(signal: AbortSignal, id: number): void {
    const watch = this.#watches.get(signal);
    if (!watch) return; // the signal is aborting its requests right now
    watch.ids.delete(id);
    if (watch.ids.size > 0) return;
    this.#watches.delete(signal);
    signal.removeEventListener("abort", watch.onAbort);
  }

  #abort(id: number, signal: AbortSignal): void {
    const pending = this.#take(id);
    if (!pending) return;
    // Only requests of the current connection are ever pending, so it is the one to tell.
    this.#connection?.send(`{"op":"cancel","id":${id}}\n`);
    pending.reject(cancelledError(signal));
  }

  /**
   * Every request in flight on a lost connection fails: the client cannot know whether it
   * ran. Each gets its own error so callers can annotate theirs without touching others'.
   */
  #lost(connection: Connection, error: CrewError): void {
    if (this.#connection !== connection) return;
    this.#connection = undefined;
    if (this.#tooLarge?.connection === connection) this.#refuseLargest(this.#tooLarge.error);
    if (this.#options.resubmit && !this.#closed && !connection.violated) return this.#reconnectLater(error);
    this.#failPending(error);
  }

  /**
   * The primary refused a frame as too large and closed the connection: that frame is the
   * longest one still unanswered (every frame it accepted is within its limit, the refused
   * one is over it), so that call fails with the refusal, not sent again forever (resubmit)
   * or failed as a lost connection.
   */
  #refuseLargest(error: CrewError): void {
    this.#tooLarge = undefined;
    let largest: [number, Pending] | undefined;
    for (const entry of this.#pending) if (!largest || entry[1].line.length > largest[1].line.length) largest = entry;
    if (largest) this.#take(largest[0])?.reject(error);
  }

  /** Resubmit: calls past their deadline fail; the others wait for the next connection. */
  #reconnectLater(error: CrewError): void {
    const now = performance.now();
    for (const [id, p] of this.#pending) {
      if (p.deadline <= now) this.#take(id)?.reject(new ConnectionError(`gave up resending the call: its deadline passed (${error.message})`, { cause: error }));
    }
    if (this.#pending.size === 0) return; // the next call connects
    const delay = this.#failover.failed();
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = null;
      if (this.#closed || this.#connection) return;
      const connection = this.#connect();
      for (const p of this.#pending.values()) connection.send(p.line);
    }, delay);
  }

  #failPending(error: CrewError): void {
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const [signal, watch] of this.#watches) signal.removeEventListener("abort", watch.onAbort);
    this.#watches.clear();
    for (const p of pending) p.reject(new ConnectionError(error.message, { cause: error.cause }));
  }
}

type RunWireFrame = { id: number; handler: string; payload: unknown } & Pick<RunOptions, "key" | "idempotencyKey" | "timeoutMs" | "priority">;
type PingWireFrame = { op: "ping"; id: number };

function runFrame(id: number, handler: string, payload: unknown, options: RunOptions): RunWireFrame {
  // Undefined fields vanish in JSON.stringify, so absent options never reach the wire.
  return { id, handler, payload, key: options.key, idempotencyKey: options.idempotencyKey, timeoutMs: options.timeoutMs, priority: options.priority };
}

function toCallResult(reply: Reply): CallResult {
  return reply.ok
    ? { ok: true, result: reply.result, meta: reply.meta }
    : { ok: false, error: reply.error, meta: reply.meta };
}

function replyError(wire: WireError, meta: ReplyMeta | undefined): ReplyError {
  const error: ReplyError = errorFromWire(wire);
  if (meta !== undefined) error.meta = meta;
  return error;
}

function cancelledError(signal: AbortSignal): CrewError {
  const reason: unknown = signal.reason;
  if (typeof reason === "string") return new CancelledError(reason, { cause: reason });
  if (reason instanceof Error) return new CancelledError(reason.message, { cause: reason });
  return new CancelledError();
}

function closedError(): CrewError {
  return new ConnectionError("the client is closed");
}
