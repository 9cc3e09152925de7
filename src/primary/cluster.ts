/**
 * A cluster: the nodes, their supervisor, the dispatcher, and the receivers, wired
 * once. `createCluster` resolves when every node has loaded the handlers.
 */
import type { Logger } from "pino";
import { BadRequestError, type CrewError, errorFromWire, ShuttingDownError } from "../errors.js";
import { startHttpFront } from "../protocol/http-receiver.js";
import { createLogger } from "../logger.js";
import type { NodeKind } from "../nodes/messages.js";
import { checkListenAddress, type ClusterOptions, type ResolvedOptions, resolveOptions } from "../options.js";
import { checkRunFields, type ReplyMeta } from "../protocol/frames.js";
import { TcpReceiver } from "../protocol/tcp-receiver.js";
import { UnreadReplies } from "../protocol/unread-replies.js";
import { ClientShares } from "./admission.js";
import { createBalancer } from "./balancers/index.js";
import { seededRandom } from "./balancers/seeded-random.js";
import { Dispatcher, type SubmitRequest } from "./dispatcher.js";
import { type HandlerSpec, HandlerRegistry, readHandlerSet } from "./handler-registry.js";
import type { DoneCallback, Job } from "./job.js";
import type { ClusterObserver } from "./observer.js";
import { Reloader, type ReloadResult } from "./reloader.js";
import { watchHandlers } from "./watcher.js";
import { isElastic, Scaler } from "./scaler.js";
import { describeRequests, type RequestStatus } from "./request-status.js";
import { Supervisor } from "./supervisor.js";
import { compileHandlers } from "./transpile.js";
import { createStore } from "../store/index.js";
import { KeyedRequests, type KeyedStats, type RequestSink } from "../store/keyed.js";
import type { RedisHost } from "../store/redis/redis-host.js";
import type { StoreCounters } from "../store/store.js";
import type { ClusterStatus, Front, HttpPort, ListenInfo, ListenOptions, NodeStatus, NodeSummary } from "./cluster-view.js";

export type { ClusterStatus, Front, ListenInfo, ListenOptions, NodeStatus } from "./cluster-view.js";

export interface RunOptions {
  key?: string;
  /** DESIGN.md's idempotency key (1 to 256 characters): joins or replays the run with the same key. */
  idempotencyKey?: string;
  timeoutMs?: number;
  priority?: number;
  signal?: AbortSignal;
}

export class Cluster implements HttpPort {
  readonly options: ResolvedOptions;
  readonly log: Logger;
  readonly #supervisor: Supervisor;
  readonly #dispatcher: Dispatcher;
  /** Keyed requests (joins, replays, the store) in front of the dispatcher; every request goes through it. */
  readonly #requests: KeyedRequests;
  /** Where the fronts hand requests: #requests, or with --redis the shared queue's front. */
  readonly #sink: RequestSink;
  readonly #redis: RedisHost | null;
  readonly #registry: HandlerRegistry;
  readonly #reloader: Reloader;
  readonly #scaler: Scaler | null;
  readonly #fronts: Front[] = [];
  readonly #startedAt = Date.now();
  /** Each connection's fair share of the queue, across both fronts. */
  readonly shares: ClientShares;
  #closing: Promise<void> | null = null;
  /** Stops --watch. */
  #unwatch: () => void = () => {};
  #hurry = false;

  /** Use createCluster(). */
  constructor(
    options: ResolvedOptions,
    log: Logger,
    supervisor: Supervisor,
    dispatcher: Dispatcher,
    registry: HandlerRegistry,
    parts: { reloader: Reloader; scaler: Scaler | null; requests: KeyedRequests; redis: RedisHost | null },
  ) {
    this.#reloader = parts.reloader;
    this.#scaler = parts.scaler;
    this.#requests = parts.requests;
    this.#redis = parts.redis;
    this.#sink = parts.redis?.front ?? parts.requests;
    this.options = options;
    if (options.watch) this.#unwatch = watchHandlers(options.handlers, () => this.reload("watch"), log);
    this.log = log;
    this.#supervisor = supervisor;
    this.#dispatcher = dispatcher;
    this.#registry = registry;
    this.shares = new ClientShares(options.maxQueue);
  }

  get handlers(): HandlerSpec[] {
    return this.#registry.list();
  }

  handler(name: string): HandlerSpec | undefined {
    return this.#registry.get(name);
  }

  get draining(): boolean {
    return this.#dispatcher.draining;
  }

  /** With --redis: this host lost its id to another and takes no more requests (redis-host.ts). */
  get retired(): boolean {
    return this.#redis?.retired === true;
  }

  /** Adds a watcher (metrics); its hooks run on the hot path. */
  observe(observer: ClusterObserver): void {
    // The dispatcher and the supervisor share one observer object (see createCluster).
    const target = this.#dispatcher.observer as Record<string, ((...args: unknown[]) => void) | undefined>;
    for (const [key, mine] of Object.entries(observer) as Array<[string, (...args: unknown[]) => void]>) {
      const theirs = target[key];
      target[key] = theirs
        ? (...args: unknown[]) => {
            theirs(...args);
            mine(...args);
          }
        : mine;
    }
  }

  /**
   * Runs one request through the dispatcher; resolves with its result or rejects with its
   * coded error. `T` is the result's type as the caller knows it (not checked at run time).
   */
  run<T = unknown>(handler: string, payload?: unknown, options: RunOptions = {}): Promise<T> {
    return this.call(handler, payload, options).then((reply) => {
      if (reply.ok) return reply.result as T;
      throw Object.assign(errorFromWire(reply.error), { meta: reply.meta });
    });
  }

  /** Like run(), but resolves with the whole reply (result or error, and meta). */
  call(
    handler: string,
    payload?: unknown,
    options: RunOptions = {},
  ): Promise<{ ok: true; result: unknown; meta: ReplyMeta } | { ok: false; error: { code: string; message: string }; meta: ReplyMeta }> {
    const invalid = typeof handler === "string" ? checkRunFields(handler, options.key, options.timeoutMs, options.priority, options.idempotencyKey)?.message : "handler must be a string";
    if (invalid) return Promise.reject(new BadRequestError(invalid));
    return new Promise((resolve) => {
      const { signal } = options;
      let job: Job | null = null;
      const onAbort = () => job && this.#sink.cancel(job);
      job = this.submit({ handler, payload, key: options.key, idempotencyKey: options.idempotencyKey, timeoutMs: options.timeoutMs, priority: options.priority }, (outcome) => {
        signal?.removeEventListener("abort", onAbort);
        if (outcome.ok) resolve({ ok: true, result: JSON.parse(outcome.json), meta: outcome.meta });
        else resolve({ ok: false, error: outcome.error.toJSON(), meta: outcome.meta });
      });
      if (!job || !signal) return;
      if (signal.aborted) onAbort();
      else signal.addEventListener("abort", onAbort, { once: true });
    });
  }

  /** The receivers' entry: callback style, no promise per request. */
  submit(request: SubmitRequest, done: DoneCallback): Job | null {
    return this.#sink.submit(request, done);
  }

  cancel(job: Job): void {
    this.#sink.cancel(job);
  }

  /** The caller is gone (connection closed): cancels the request unless it has an idempotency key. */
  hangUp(job: Job): void {
    this.#sink.hangUp(job);
  }

  /** Whether a request that cannot start at once would be refused E_OVERLOADED (fair sharing, see ClientShares). */
  get queueFull(): boolean {
    return this.#sink.queueFull;
  }

  /** Answers a waiting request E_OVERLOADED to make room in a full queue; false when it is not waiting. */
  shed(job: Job, error: CrewError): boolean {
    return this.#sink.shed(job, error);
  }

  /** The idempotency keys' counters and the store's, for the metrics. */
  storeMetrics(): { stats: KeyedStats; counters: StoreCounters } {
    return { stats: this.#requests.stats, counters: this.#requests.store.counters };
  }

  /** Counts a request a front refused before it reached the dispatcher (bad frame, body too large). */
  noteRefused(handler: string, code: string): void {
    this.#dispatcher.noteRefused(handler, code);
  }

  /** Kills a node (admin endpoint, chaos); it is restarted like any crashed node. */
  killNode(id: string): boolean {
    return this.#supervisor.kill(id);
  }

  /**
   * Zero-downtime reload of the handlers folder (see reloader.ts): resolves with what
   * changed once every node runs the new set; rejects with HandlerLoadError naming the file
   * when the folder no longer loads (the nodes keep their code), or ShuttingDownError.
   */
  reload(reason = "api"): Promise<ReloadResult> {
    if (this.#closing) return Promise.reject(new ShuttingDownError("reload() after close()"));
    return this.#reloader.reload(reason);
  }

  async listen(options: ListenOptions = {}): Promise<ListenInfo> {
    if (this.#closing) throw new ShuttingDownError("listen() after close()");
    const { host, port } = checkListenAddress(options);
    const { maxFrameBytes, maxConnectionInflight, maxConnections, idleConnectionMs, maxUnsentReplyBytes, maxPendingBytes } = this.options;
    // One budget of unread replies for both fronts: --max-pending-bytes across every connection.
    const unread = new UnreadReplies(maxPendingBytes, this.log);
    const tcp = new TcpReceiver(
      this.#sink,
      { maxFrameBytes, maxConnectionInflight, maxConnections, idleConnectionMs, maxUnsentReplyBytes, unread, shares: this.shares },
      this.log,
    );
    const address = await tcp.listen(port, host);
    this.#addFront(tcp);
    let httpPort: number | null = null;
    if (options.httpPort !== undefined) {
      const http = await startHttpFront(this, { ...options, host }, unread);
      this.#addFront(http.front);
      httpPort = http.port;
    }
    this.log.info({ host, port: address.port, httpPort }, "listening");
    return { host, port: address.port, httpPort };
  }

  /** A front that finished listening after close() began is closed at once, not left open. */
  #addFront(front: Front): void {
    if (!this.#closing) return void this.#fronts.push(front);
    front.stopAccepting();
    front.destroyConnections();
    throw new ShuttingDownError("the cluster closed while listen() was starting");
  }

  async status(): Promise<ClusterStatus> {
    const nodes = await Promise.all(
      this.#supervisor.nodes.map(async (node): Promise<NodeStatus> => {
        const memory = await node.memory();
        return {
          id: node.id,
          kind: node.kind,
          pid: node.pid,
          threadId: node.threadId,
          state: node.state,
          inFlight: node.inFlight,
          completed: node.completed,
          crashes: node.crashes,
          restarts: node.restarts,
          heapUsed: memory?.heapUsed ?? null,
          rss: memory?.rss ?? null,
          lastExit: node.lastExit?.reason ?? null,
        };
      }),
    );
    return {
      nodes,
      queue: { length: this.#dispatcher.queueLength, max: this.options.maxQueue },
      requests: { ...this.#dispatcher.stats, ...this.#dispatcher.hedgeStats, active: this.#dispatcher.active },
      balancer: this.options.balancer,
      draining: this.#dispatcher.draining,
      store: { ...this.#requests.store.status(), ...this.#requests.stats },
      ...(this.#redis ? { host: this.#redis.hostId, hosts: await this.#redis.hosts() } : {}),
      uptimeMs: Date.now() - this.#startedAt,
      scaling: this.#scaling(),
    };
  }

  #scaling(): ClusterStatus["scaling"] {
    const o = this.options;
    const now = (kind: NodeKind) => this.#supervisor.nodes.filter((n) => n.kind === kind && n.state !== "stopping" && n.state !== "stopped").length;
    return {
      threads: { now: now("thread"), min: o.threads, max: o.maxThreads },
      processes: { now: now("process"), min: o.processes, max: o.maxProcesses },
      elastic: this.#scaler ? { scaleUpMs: o.scaleUpMs, idleTimeoutMs: o.idleTimeoutMs } : null,
    };
  }

  /** The requests accepted and not yet answered, oldest first: at most `limit` of them. */
  requests(limit = Infinity): RequestStatus[] {
    return describeRequests(this.#dispatcher.requests(), limit);
  }

  /** Live nodes, for metrics: id, kind, state and counters without a memory query. */
  get nodes(): ReadonlyArray<NodeSummary> {
    return this.#supervisor.nodes;
  }

  get queueLength(): number {
    return this.#dispatcher.queueLength;
  }

  /** Requests accepted and not yet answered. */
  get active(): number {
    return this.#dispatcher.active;
  }

  /**
   * Drains: stops accepting, lets in-flight work finish (up to drainTimeoutMs), answers
   * what is left with E_SHUTTING_DOWN, stops the nodes. Safe to call more than once.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  /**
   * Ends a drain at once (or closes without one): what is still open answers
   * E_SHUTTING_DOWN now, and the nodes stop without kill grace.
   */
  closeNow(): Promise<void> {
    this.#hurry = true;
    const closing = this.close();
    this.#dispatcher.hurryDrain();
    return closing;
  }

  async #close(): Promise<void> {
    this.#unwatch();
    this.#scaler?.stop();
    this.log.info({ active: this.#dispatcher.active }, "draining");
    for (const front of this.#fronts) front.stopAccepting();
    // No await without Redis: draining must begin synchronously, as close() promises.
    if (this.#redis) await this.#redis.drainFront(this.options.drainTimeoutMs);
    await this.#dispatcher.drain(this.options.drainTimeoutMs);
    await this.#redis?.close(this.options.drainTimeoutMs);
    // Let the last replies reach their sockets before the connections go.
    await new Promise((resolve) => setImmediate(resolve));
    // Connections end after their last replies, while the nodes stop (in a hurry, nobody waits for them).
    const ended = Promise.all(this.#fronts.map((front) => front.destroyConnections()));
    await Promise.all([this.#hurry ? null : ended, this.#supervisor.stop(this.#hurry ? 0 : this.options.killGraceMs)]);
    await this.#requests.store.close();
    this.log.info("stopped");
  }
}

export async function createCluster(input: ClusterOptions = {}): Promise<Cluster> {
  const options = resolveOptions(input);
  const log = options.logger ?? createLogger(options.logLevel);
  const handlers = await compileHandlers(readHandlerSet(options.handlers), log);
  // The store first: a journal that cannot be used stops the start before any node spawns.
  const opening = performance.now();
  const store = await createStore(options, log);
  const open = await store.open();
  const readMs = Math.round(performance.now() - opening);
  const supervisor = await Supervisor.create(options, handlers, log);
  const configs = await supervisor.start();
  const registry = new HandlerRegistry(handlers, configs, options);
  const random = options.seed === null ? Math.random : seededRandom(options.seed);
  const balancer = createBalancer(options.balancer, { random, weights: options.weights });
  const dispatcher = new Dispatcher({ nodes: supervisor.nodes, balancer, registry, options, log });
  supervisor.attach(dispatcher);
  supervisor.observer = dispatcher.observer;
  log.info(
    { nodes: supervisor.nodes.map((n) => n.id), handlers: registry.list().map((h) => h.name), balancer: options.balancer },
    "cluster up",
  );
  const reloader = new Reloader({ dir: options.handlers, current: handlers, supervisor, registry, dispatcher, log });
  const requests = new KeyedRequests({ dispatcher, store, log, timeoutOf: (name) => registry.get(name)?.timeoutMs ?? options.timeoutMs });
  if (open.length > 0) {
    const started = performance.now();
    requests.recover(open);
    log.info({ requeued: open.length, readMs, queueMs: Math.round(performance.now() - started), journal: options.journal }, "journaled requests queued again");
  }
  const scaler = isElastic(options) ? new Scaler({ options, supervisor, dispatcher, log, paused: () => reloader.busy }) : null;
  const redis = options.redis ? await joinRedis(options, { dispatcher, nodes: supervisor.nodes, registry, log }, supervisor) : null;
  return new Cluster(options, log, supervisor, dispatcher, registry, { reloader, scaler, requests, redis });
}

/** --redis: joins the hosts sharing that Redis; the nodes stop if it cannot. */
async function joinRedis(options: ResolvedOptions, deps: Parameters<typeof RedisHost.start>[1], supervisor: Supervisor): Promise<RedisHost> {
  try {
    // Imported only here: ioredis costs every other start ~60 ms of module loading.
    const { RedisHost } = await import("../store/redis/redis-host.js");
    return await RedisHost.join(options, deps);
  } catch (err) {
    await supervisor.stop(0);
    throw err;
  }
}
