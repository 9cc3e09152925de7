/**
 * One host of a cluster that shares its work through Redis (`--redis URL`): connects,
 * warns about Redis settings that can lose acknowledged work, and wires the accepting side
 * (RedisFront, the fronts' request sink) and the running side (RedisWorker, which feeds the
 * local dispatcher) to the host's channels. The dispatcher itself knows nothing of Redis.
 */
import type { Logger } from "pino";
import { UnavailableError } from "../../errors.js";
import type { ComputeNode } from "../../nodes/compute-node.js";
import type { Dispatcher } from "../../primary/dispatcher.js";
import type { HandlerRegistry } from "../../primary/handler-registry.js";
import type { ResolvedOptions } from "../../options.js";
import { closeRedis, connectRedis, persistenceWarnings, type RedisConnections } from "./connection.js";
import { withoutPassword } from "./redis-url.js";
import { HostChannels } from "./host-channels.js";
import { HostLease } from "./host-lease.js";
import { Keys } from "./keys.js";
import { RedisFront } from "./redis-front.js";
import { liveForMs, RedisWorker } from "./redis-worker.js";
import { type HostInfo, SharedQueue } from "./shared-queue.js";

export interface RedisHostOptions {
  url: string;
  cluster: string;
  hostId: string;
  hostTimeoutMs: number;
  resultTtlMs: number;
  maxQueue: number;
  nodePipeline: number;
}

/** A host as `/v1/status` lists it: its nodes as its last heartbeat told. */
export interface HostStatus {
  id: string;
  lastSeenMs: number;
  self: boolean;
  held: number;
  nodes: HostInfo["nodes"];
}

export class RedisHost {
  readonly front: RedisFront;
  readonly #worker: RedisWorker;
  readonly #channels: HostChannels;
  readonly #conns: RedisConnections;
  readonly #queue: SharedQueue;
  readonly #options: RedisHostOptions;
  readonly #lease: HostLease;
  #retired = false;

  private constructor(conns: RedisConnections, options: RedisHostOptions, lease: HostLease, deps: HostDeps) {
    this.#conns = conns;
    this.#options = options;
    this.#lease = lease;
    const keys = lease.keys;
    const host = options.hostId;
    this.#queue = new SharedQueue(conns.cmd, keys, host, { maxQueue: options.maxQueue, resultTtlMs: options.resultTtlMs });
    const connected = () => conns.cmd.status === "ready";
    this.front = new RedisFront({ queue: this.#queue, registry: deps.registry, host, connected, observer: () => deps.dispatcher.observer, log: deps.log });
    this.#worker = new RedisWorker({ queue: this.#queue, dispatcher: deps.dispatcher, nodes: deps.nodes, registry: deps.registry, host, hostTimeoutMs: options.hostTimeoutMs, nodePipeline: options.nodePipeline, connected, renewLease: () => lease.renew(), onLostId: () => this.#retire(), log: deps.log });
    this.#channels = new HostChannels(conns, keys, host, {
      reply: (id, reply) => this.front.deliver(id, reply),
      work: (message) => this.#worker.workNoticed(message),
      abort: (id) => this.#worker.abort(id),
    }, deps.log);
    conns.cmd.on("ready", () => this.#worker.connectionReady());
  }

  /** Connects and joins the cluster. Throws when Redis cannot be reached at start. */
  static async start(options: RedisHostOptions, deps: HostDeps): Promise<RedisHost> {
    const conns = await connectRedis(options.url, options.hostId, deps.log);
    try {
      for (const warning of await persistenceWarnings(conns.cmd)) deps.log.warn({ redis: withoutPassword(options.url) }, warning);
      const lease = new HostLease(conns.cmd, new Keys(options.cluster), options.hostId, liveForMs(options.hostTimeoutMs));
      await lease.claim();
      const host = new RedisHost(conns, options, lease, deps);
      await host.#queue.ensureGroups();
      await host.#channels.start();
      // Joined once the other hosts can see its nodes: before, a host with no process node
      // could answer E_NO_NODE for a handler this one (already listening) can run.
      await host.#worker.start();
      deps.log.info({ host: options.hostId, cluster: options.cluster, redis: withoutPassword(options.url), hostTimeoutMs: options.hostTimeoutMs }, "joined the cluster through Redis");
      return host;
    } catch (err) {
      closeRedis(conns);
      throw err;
    }
  }

  /** From the cluster's resolved options (`redis` set): joins, and pulls again whenever a node restarts. */
  static async join(options: ResolvedOptions, deps: HostDeps): Promise<RedisHost> {
    const { redis, cluster, hostId, hostTimeoutMs, resultTtlMs, maxQueue, nodePipeline } = options;
    const host = await RedisHost.start({ url: redis!, cluster, hostId, hostTimeoutMs, resultTtlMs, maxQueue, nodePipeline }, deps);
    const observer = deps.dispatcher.observer;
    const restarted = observer.nodeRestarted;
    observer.nodeRestarted = (node) => (restarted?.(node), host.roomChanged());
    return host;
  }

  get hostId(): string {
    return this.#options.hostId;
  }

  /** True once this host lost its id to another (it then refuses every request: /healthz says 503). */
  get retired(): boolean {
    return this.#retired;
  }

  /**
   * Another host holds this host's id: its reply stream (one per id) is the other's now.
   * Reading it too would take the other's replies, and this host's clients would get none:
   * the reading stops, and the front refuses (E_UNAVAILABLE) and answers those waiting.
   */
  #retire(): void {
    this.#retired = true;
    this.front.retire(new UnavailableError(`host ${this.#options.hostId} lost its --host-id to another host: this host takes no more requests; send them to another host`));
    void this.#channels.close();
  }

  /** A local node came up or finished a request: there may be room to pull. */
  roomChanged(): void {
    this.#worker.pump();
  }

  /** Every host heartbeating in this cluster, this one first. Empty while Redis is away. */
  async hosts(): Promise<HostStatus[]> {
    let hosts: Awaited<ReturnType<SharedQueue["hosts"]>> = [];
    try {
      hosts = await this.#queue.hosts();
    } catch {
      return [];
    }
    const now = Date.now();
    return hosts
      .map(({ id, lastSeen, info }) => ({ id, lastSeenMs: now - lastSeen, self: id === this.#options.hostId, held: info.held ?? 0, nodes: info.nodes ?? [] }))
      .sort((a, b) => Number(b.self) - Number(a.self) || a.id.localeCompare(b.id));
  }

  /**
   * Leaves: stops accepting and waits for the replies of what this host accepted (still
   * pulling, so a lone host runs its own queue), then stops pulling. The caller drains
   * the dispatcher (what this host runs) between this and close().
   */
  async drainFront(timeoutMs: number): Promise<void> {
    await this.front.drain(timeoutMs);
    this.#worker.stopPulling();
  }

  async close(timeoutMs: number): Promise<void> {
    await this.#worker.close(timeoutMs);
    // A clean stop gives the id back: a restart under it need not wait out the lease.
    await this.#lease.release().catch(() => {});
    await this.#channels.close();
    closeRedis(this.#conns);
  }
}

interface HostDeps {
  dispatcher: Dispatcher;
  nodes: readonly ComputeNode[];
  registry: HandlerRegistry;
  log: Logger;
}
