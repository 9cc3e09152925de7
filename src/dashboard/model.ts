/**
 * What the dashboard shows, gathered from the cluster: its status (nodes, queue,
 * counters) and requests in flight when a viewer asks, the charts' samples each second,
 * and a timeline of crashes, kills, restarts, retries, reloads and takeovers from the
 * cluster's observer hooks. A cluster with its HTTP front up keeps the samples and the
 * timeline whether or not anyone watches, so a page opened late still has history.
 */
import type { ClusterStatus, ClusterView, NodeStatus } from "../primary/cluster-view.js";
import type { ClusterEvent } from "../primary/observer.js";
import type { RequestStatus } from "../primary/request-status.js";
import type { HostStatus } from "../store/redis/redis-host.js";
import { Ring } from "./ring.js";
import { Series } from "./series.js";

export interface TimelineEvent {
  /** Epoch ms. */
  t: number;
  kind: "crash" | "kill" | "restart" | "retry" | ClusterEvent["kind"];
  message: string;
  node?: string;
  host?: string;
  requestId?: string;
}

export interface HostView {
  /** "local" until the cluster spans several hosts (Redis); then the host id. */
  id: string;
  /** Whether this is the host serving the page. */
  self: boolean;
  /** Other hosts (from the shared store): ms since their last heartbeat, requests they hold. */
  lastSeenMs?: number;
  held?: number;
  /** This host's nodes in full; another host's as it reports them (id, kind, state, in flight). */
  nodes: Array<NodeStatus | HostStatus["nodes"][number]>;
}

/** One view of the cluster: what the page redraws from. */
export interface Snapshot {
  t: number;
  uptimeMs: number;
  balancer: string;
  draining: boolean;
  hosts: HostView[];
  queue: ClusterStatus["queue"];
  counters: ClusterStatus["requests"];
  /** The oldest requests in flight (at most REQUESTS_SHOWN), and how many there are in all. */
  requests: RequestStatus[];
  requestsTotal: number;
}

/** The page lists this many requests in flight, the oldest. */
export const REQUESTS_SHOWN = 50;
/** Timeline entries kept (the page shows them all). */
export const EVENTS_KEPT = 200;
const SAMPLE_MS = 1000;
/** A retried request's id is named in its crash's retry line up to this many. */
const RETRY_IDS_NAMED = 3;

export class DashboardModel {
  readonly series = new Series();
  readonly timeline = new Ring<TimelineEvent>(EVENTS_KEPT);
  readonly #cluster: ClusterView;
  readonly #timer: NodeJS.Timeout;
  /** Retries of one crash, folded into one timeline line when the crash path is done. */
  readonly #retries = new Map<string, { ids: string[]; resumed: number }>();
  /** Called after each timeline entry, so viewers see it at once. */
  onEvent: () => void = () => {};

  constructor(cluster: ClusterView) {
    this.#cluster = cluster;
    cluster.observe({
      requestDone: (job, outcome) => this.series.record(performance.now() - job.submittedAt, outcome.ok),
      requestRefused: () => this.series.refused(),
      nodeKilled: (node) => this.#add({ kind: "kill", node: node.id, message: `${node.id} killed on request` }),
      nodeCrashed: (node, info) => this.#add({ kind: "crash", node: node.id, message: `${node.id} (${node.kind}) ${info.reason}` }),
      nodeRestarted: (node) => this.#add({ kind: "restart", node: node.id, message: `${node.id} restarted (restart ${node.restarts})` }),
      retry: (job, node) => this.#retry(node.id, job.requestId, job.checkpoint !== null),
      event: (event) => this.#add(event),
    });
    this.#timer = setInterval(() => this.series.sample(cluster.queueLength, inFlight(cluster)), SAMPLE_MS).unref();
  }

  /** The cluster now: nodes (with a memory query to each), queue, counters, oldest requests. */
  async snapshot(): Promise<Snapshot> {
    // Taken before the memory queries: a busy node answers one only when its handler
    // yields (at a checkpoint, say), so ages read after them would all look fresh.
    const t = Date.now();
    const requests = this.#cluster.requests(REQUESTS_SHOWN);
    const requestsTotal = this.#cluster.active;
    const status = await this.#cluster.status();
    return {
      t,
      uptimeMs: status.uptimeMs,
      balancer: status.balancer,
      draining: status.draining,
      hosts: hostViews(status),
      queue: status.queue,
      counters: status.requests,
      requests,
      requestsTotal,
    };
  }

  close(): void {
    clearInterval(this.#timer);
    this.onEvent = () => {};
  }

  #add(event: Omit<TimelineEvent, "t">): void {
    this.timeline.push({ t: Date.now(), ...event });
    this.onEvent();
  }

  /** One crash may send many requests back to the queue: one line says so, once the crash path is done. */
  #retry(node: string, requestId: string, resumed: boolean): void {
    let batch = this.#retries.get(node);
    if (!batch) {
      this.#retries.set(node, (batch = { ids: [], resumed: 0 }));
      queueMicrotask(() => {
        this.#retries.delete(node);
        const more = batch!.ids.length > RETRY_IDS_NAMED ? ` and ${batch!.ids.length - RETRY_IDS_NAMED} more` : "";
        const which = batch!.ids.slice(0, RETRY_IDS_NAMED).join(", ") + more;
        const from = batch!.resumed === 0 ? "from the start" : `${batch!.resumed} from a checkpoint`;
        const requestId = batch!.ids.length === 1 ? batch!.ids[0] : undefined;
        const count = batch!.ids.length === 1 ? "1 request" : `${batch!.ids.length} requests`;
        this.#add({ kind: "retry", node, requestId, message: `${count} retried after ${node} died (${from}): ${which}` });
      });
    }
    batch.ids.push(requestId);
    if (resumed) batch.resumed++;
  }
}

/**
 * The hosts as status lists them (several, on Redis), with this host's own nodes in full;
 * this host alone when it is on its own, or when the shared store cannot list them.
 */
function hostViews(status: ClusterStatus): HostView[] {
  const listed = status.hosts ?? [];
  const self: HostView = { ...listed.find((host) => host.self), id: status.host ?? "local", self: true, nodes: status.nodes };
  return [self, ...listed.filter((host) => !host.self)];
}

function inFlight(cluster: ClusterView): number {
  let n = 0;
  for (const node of cluster.nodes) n += node.inFlight;
  return n;
}
