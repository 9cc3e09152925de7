/**
 * The cluster as the modules it starts see it: the shapes of its status, and the narrow
 * ports its fronts and readers get instead of the Cluster class. The HTTP front, the
 * dashboard and the metrics depend on these interfaces; cluster.ts, which starts them,
 * implements them. So no module the cluster imports imports it back, not even for a type.
 */
import type { Logger } from "pino";
import type { NodeState } from "../nodes/compute-node.js";
import type { NodeKind } from "../nodes/messages.js";
import type { ResolvedOptions } from "../options.js";
import type { KeyedStats, RequestSink } from "../store/keyed.js";
import type { HostStatus } from "../store/redis/redis-host.js";
import type { StoreCounters, StoreStatus } from "../store/store.js";
import type { ClientShares } from "./admission.js";
import type { DispatchStats } from "./dispatcher.js";
import type { HandlerSpec } from "./handler-registry.js";
import type { HedgeStats } from "./hedger.js";
import type { ClusterObserver } from "./observer.js";
import type { ReloadResult } from "./reloader.js";
import type { RequestStatus } from "./request-status.js";

export interface ListenOptions {
  /** TCP port; 0 picks a free one. Default 7070. */
  port?: number;
  /** Default 127.0.0.1: listening beyond loopback is a deliberate choice. */
  host?: string;
  /** HTTP port; no HTTP front unless given. */
  httpPort?: number;
  /** Allows the admin endpoints (node kill) from other hosts than loopback. */
  adminToken?: string;
}

export interface ListenInfo {
  host: string;
  port: number;
  httpPort: number | null;
}

export interface NodeStatus {
  id: string;
  kind: NodeKind;
  pid: number | null;
  threadId: number | null;
  state: NodeState;
  inFlight: number;
  completed: number;
  crashes: number;
  restarts: number;
  heapUsed: number | null;
  rss: number | null;
  lastExit: string | null;
}

export interface ClusterStatus {
  nodes: NodeStatus[];
  queue: { length: number; max: number };
  requests: DispatchStats & HedgeStats & { active: number };
  balancer: string;
  draining: boolean;
  /** The idempotency-key store (memory or journal), with replayed and joined counts. */
  store: StoreStatus & { replayed: number; joined: number };
  /** With --redis: this host's id, and every host of the cluster with its nodes. */
  host?: string;
  hosts?: HostStatus[];
  uptimeMs: number;
  /** Node counts: now (taking work), and the MIN..MAX range; scaleUpMs/idleTimeoutMs when elastic. */
  scaling: {
    threads: { now: number; min: number; max: number };
    processes: { now: number; min: number; max: number };
    elastic: { scaleUpMs: number; idleTimeoutMs: number } | null;
  };
}

/** A receiver, as close() sees it: stop taking connections, then drop the open ones. */
export interface Front {
  stopAccepting(): void;
  /** Ends the open connections after their last replies; resolves once they are gone. */
  destroyConnections(): void | Promise<void>;
}

/** A live node as the metrics read it: no memory query. */
export interface NodeSummary {
  id: string;
  kind: NodeKind;
  state: NodeState;
  inFlight: number;
  crashes: number;
  restarts: number;
  completed: number;
}

/** What the dashboard and the metrics read of a cluster. */
export interface ClusterView {
  readonly options: ResolvedOptions;
  readonly log: Logger;
  readonly handlers: HandlerSpec[];
  /** The handler served under `name` now (a reload adds and removes them), or undefined. */
  handler(name: string): HandlerSpec | undefined;
  readonly nodes: ReadonlyArray<NodeSummary>;
  readonly queueLength: number;
  /** Requests accepted and not yet answered. */
  readonly active: number;
  /** Adds a watcher; its hooks run on the hot path. */
  observe(observer: ClusterObserver): void;
  status(): Promise<ClusterStatus>;
  /** The requests accepted and not yet answered, oldest first: at most `limit` of them. */
  requests(limit?: number): RequestStatus[];
  /** The idempotency keys' counters and the store's. */
  storeMetrics(): { stats: KeyedStats; counters: StoreCounters };
}

/**
 * What the HTTP front needs: the submit port the TCP receiver has too (RequestSink, but
 * for hold and release: an HTTP request is never held back for its connection's sake),
 * the clients' shares of the queue, the reads, and the admin actions (reload, node kill).
 */
export interface HttpPort extends ClusterView, Omit<RequestSink, "hold" | "release"> {
  readonly shares: ClientShares;
  readonly draining: boolean;
  /** With --redis: this host lost its id to another and refuses every request. */
  readonly retired: boolean;
  /** Kills a node; false when no node has that id. */
  killNode(id: string): boolean;
  /** Reloads the handlers folder; rejects with HandlerLoadError or ShuttingDownError. */
  reload(reason?: string): Promise<ReloadResult>;
}
