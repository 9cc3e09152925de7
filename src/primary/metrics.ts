/**
 * The cluster's Prometheus metrics. Each cluster gets its own set, created the first time
 * its HTTP front starts, so a cluster without HTTP pays nothing.
 *
 * The observer hooks run on the dispatcher's hot path. A prom-client label child still
 * hashes and validates its labels on every call (about 0.3 µs for a counter, 0.6 µs for
 * a histogram: 2 µs a request), so the hooks only add to plain numbers held here, per
 * handler and per node; prom-client reads them when scraped (metrics-registry.ts). That
 * module, and prom-client with it (~60 ms of module loading, @opentelemetry/api included),
 * is imported at the first scrape, not at start.
 */
import type { NodeKind } from "../nodes/messages.js";
import type { ClusterView } from "./cluster-view.js";
import type { Job, Outcome } from "./job.js";
import type { ScrapedRegistry } from "./metrics-registry.js";
import { type HandlerSeries, Latency, type NodeCounts, UNKNOWN_HANDLER_LABEL } from "./metrics-series.js";

/** A cluster's metrics: plain numbers fed by its observer hooks, published on scrape(). */
export class ClusterMetrics {
  readonly #cluster: ClusterView;
  readonly #series = new Map<string, HandlerSeries>();
  readonly #unknown: HandlerSeries;
  readonly #nodes = new Map<string, NodeCounts>();
  #registry: Promise<ScrapedRegistry> | null = null;

  constructor(cluster: ClusterView) {
    this.#cluster = cluster;
    for (const { name } of cluster.handlers) this.#series.set(name, newSeries(name, true));
    this.#unknown = newSeries(UNKNOWN_HANDLER_LABEL, false);
    for (const node of cluster.nodes) this.#node(node);
    cluster.observe({
      attemptStarted: (job, _node, first) => {
        if (first) this.#of(job.handler).queue.observe((job.startedAt - job.submittedAt) / 1000);
      },
      requestDone: (job, outcome) => this.#done(job, outcome),
      requestRefused: (handler, code) => this.refused(handler, code),
      retry: (job) => void this.#of(job.handler).retries++,
      checkpointStored: (job) => void this.#of(job.handler).checkpoints++,
      hedgeStarted: (job) => void this.#of(job.handler).hedges++,
      hedgeSettled: (job, byHedge) => void (byHedge && this.#of(job.handler).hedgeWins++),
      nodeCrashed: (node) => void this.#node(node).crashes++,
      nodeRestarted: (node) => void this.#node(node).restarts++,
      // Handlers a reload added are listed at 0 from then on, as those it started with.
      event: (event) => {
        if (event.kind === "reload") for (const { name } of cluster.handlers) this.#of(name);
      },
    });
  }

  /** Counts a request refused before it became a job (by the dispatcher, or by a front for a bad request). */
  refused(handler: string, code: string): void {
    count(this.#of(handler), code);
  }

  /** The Prometheus text (this cluster's metrics, then the process's) and its Content-Type. The first call loads prom-client. */
  async scrape(): Promise<{ text: string; contentType: string }> {
    this.#registry ??= import("./metrics-registry.js").then(({ scrapedRegistry }) =>
      scrapedRegistry({ series: () => [...this.#series.values(), this.#unknown], nodes: this.#nodes, cluster: this.#cluster }),
    );
    const registry = await this.#registry;
    return { text: await registry.text(), contentType: registry.contentType };
  }

  #done(job: Job, outcome: Outcome): void {
    const series = this.#of(job.handler);
    count(series, outcome.ok ? "ok" : outcome.error.code);
    const now = performance.now();
    series.duration.observe((now - job.submittedAt) / 1000);
    if (job.startedAt !== 0) series.run.observe((now - job.startedAt) / 1000);
  }

  /**
   * A handler's series. One a reload added gets its own from its first request; names the
   * cluster does not serve share one, so clients cannot grow the set of label values.
   */
  #of(handler: string): HandlerSeries {
    let series = this.#series.get(handler);
    if (series) return series;
    if (!this.#cluster.handler(handler)) return this.#unknown;
    this.#series.set(handler, (series = newSeries(handler, true)));
    return series;
  }

  /** A node's counts, shown at 0 from the start (or from its first event, for a node added later). */
  #node(node: { id: string; kind: NodeKind }): NodeCounts {
    let counts = this.#nodes.get(node.id);
    if (!counts) this.#nodes.set(node.id, (counts = { id: node.id, kind: node.kind, crashes: 0, restarts: 0 }));
    return counts;
  }
}

function newSeries(name: string, zeroed: boolean): HandlerSeries {
  const codes = new Map<string, number>();
  if (zeroed) codes.set("ok", 0);
  return { name, zeroed, codes, queue: new Latency(), run: new Latency(), duration: new Latency(), retries: 0, checkpoints: 0, hedges: 0, hedgeWins: 0 };
}

function count(series: HandlerSeries, code: string): void {
  series.codes.set(code, (series.codes.get(code) ?? 0) + 1);
}

const byCluster = new WeakMap<ClusterView, ClusterMetrics>();

/** The cluster's metrics, created (and hooked up) on first use. */
export function metricsFor(cluster: ClusterView): ClusterMetrics {
  let metrics = byCluster.get(cluster);
  if (!metrics) byCluster.set(cluster, (metrics = new ClusterMetrics(cluster)));
  return metrics;
}
