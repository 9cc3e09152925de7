/**
 * The cluster's Prometheus metrics (prom-client). Each cluster gets its own Registry, so
 * several clusters in one process never clash; they are created the first time a
 * cluster's HTTP front starts, so a cluster without HTTP pays nothing.
 *
 * The observer hooks run on the dispatcher's hot path. A prom-client label child still
 * hashes and validates its labels on every call (about 0.3 µs for a counter, 0.6 µs for
 * a histogram: 2 µs a request), so the hooks only add to plain numbers held per
 * handler, resolved once; prom-client reads them when scraped. Gauges read live values.
 *
 * The primary's process metrics (prom-client's collectDefaultMetrics, with its default
 * names: process_cpu_seconds_total, nodejs_heap_size_used_bytes …) describe the process,
 * not a cluster, so one process-wide registry holds them and every cluster's scrape
 * appends it: a second cluster does not start a second set of GC observers.
 */
import { collectDefaultMetrics, Counter, Gauge, type Metric, Registry } from "prom-client";
import type { NodeState } from "../nodes/compute-node.js";
import type { Cluster } from "./cluster.js";
import type { Job, Outcome } from "./job.js";
import { registerStoreMetrics } from "../store/store-metrics.js";

/** The label of requests naming no known handler: not a valid handler name, so it never collides. */
export const UNKNOWN_HANDLER_LABEL = "<unknown>";

const NODE_STATES: readonly NodeState[] = ["starting", "up", "down", "stopping", "stopped"];

/** Seconds, from half a millisecond (echo over loopback) to two minutes (long jobs). */
const BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

/** One histogram series as plain numbers: per-bucket (not yet cumulative) counts, the last for +Inf. */
class Latency {
  readonly counts = new Array<number>(BUCKETS.length + 1).fill(0);
  sum = 0;
  count = 0;

  observe(seconds: number): void {
    let i = 0;
    while (i < BUCKETS.length && seconds > BUCKETS[i]!) i++;
    this.counts[i]!++;
    this.sum += seconds;
    this.count++;
  }

  reset(): void {
    this.counts.fill(0);
    this.sum = 0;
    this.count = 0;
  }
}

/** One handler's numbers. */
interface HandlerSeries {
  name: string;
  /** Shown at 0 before anything happens, so rate() sees a handler's first request. */
  zeroed: boolean;
  /** Answers by code ("ok" or the error code). */
  codes: Map<string, number>;
  queue: Latency;
  run: Latency;
  duration: Latency;
  retries: number;
  checkpoints: number;
  /** Hedges started, and requests a hedge answered first (hedger.ts). */
  hedges: number;
  hedgeWins: number;
}

let processRegistry: Registry | null = null;

function processMetrics(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

export class ClusterMetrics {
  readonly registry = new Registry();
  readonly #series = new Map<string, HandlerSeries>();
  readonly #unknown: HandlerSeries;

  constructor(cluster: Cluster) {
    for (const { name } of cluster.handlers) this.#series.set(name, newSeries(name, true));
    this.#unknown = newSeries(UNKNOWN_HANDLER_LABEL, false);
    const all = [...this.#series.values(), this.#unknown];
    this.#counters(all);
    for (const [name, help, pick] of [
      ["crew_request_queue_seconds", "Time from acceptance to the first attempt's start", (s: HandlerSeries) => s.queue],
      ["crew_request_run_seconds", "Time from the first attempt's start to the answer (retries included)", (s: HandlerSeries) => s.run],
      ["crew_request_duration_seconds", "Time from acceptance to the answer", (s: HandlerSeries) => s.duration],
    ] as const) {
      this.registry.registerMetric(histogramFamily(name, help, all, pick));
    }
    const crashes = new Counter({ name: "crew_node_crashes_total", help: "Node deaths (exit, signal, OOM, lost channel, kill)", labelNames: ["node", "kind"], registers: [this.registry] });
    const restarts = new Counter({ name: "crew_node_restarts_total", help: "Nodes restarted after a death", labelNames: ["node", "kind"], registers: [this.registry] });
    for (const node of cluster.nodes) {
      crashes.inc({ node: node.id, kind: node.kind }, 0);
      restarts.inc({ node: node.id, kind: node.kind }, 0);
    }
    this.#liveGauges(cluster);
    registerStoreMetrics(this.registry, () => cluster.storeMetrics());
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
      // Rare events: prom-client directly.
      nodeCrashed: (node) => crashes.inc({ node: node.id, kind: node.kind }),
      nodeRestarted: (node) => restarts.inc({ node: node.id, kind: node.kind }),
    });
  }

  /** Counts a request refused before it became a job (by the dispatcher, or by a front for a bad request). */
  refused(handler: string, code: string): void {
    count(this.#of(handler), code);
  }

  /** The Prometheus text: this cluster's metrics, then the process's. */
  async text(): Promise<string> {
    const [mine, primary] = await Promise.all([this.registry.metrics(), processMetrics().metrics()]);
    return `${mine}\n${primary}`;
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  #done(job: Job, outcome: Outcome): void {
    const series = this.#of(job.handler);
    count(series, outcome.ok ? "ok" : outcome.error.code);
    const now = performance.now();
    series.duration.observe((now - job.submittedAt) / 1000);
    if (job.startedAt !== 0) series.run.observe((now - job.startedAt) / 1000);
  }

  #of(handler: string): HandlerSeries {
    return this.#series.get(handler) ?? this.#unknown;
  }

  /** Counters published from the per-handler numbers when scraped. */
  #counters(all: HandlerSeries[]): void {
    const registers = [this.registry];
    new Counter({
      name: "crew_requests_total",
      help: "Requests answered, by handler and outcome code (ok, or the error code; refusals at the door included)",
      labelNames: ["handler", "code"],
      registers,
      collect() {
        this.reset();
        for (const s of all) for (const [code, n] of s.codes) this.inc({ handler: s.name, code }, n);
      },
    });
    const perHandler = (name: string, help: string, pick: (s: HandlerSeries) => number) =>
      new Counter({
        name,
        help,
        labelNames: ["handler"],
        registers,
        collect() {
          this.reset();
          for (const s of all) if (s.zeroed || pick(s) > 0) this.inc({ handler: s.name }, pick(s));
        },
      });
    perHandler("crew_retries_total", "Attempts restarted on another node after their node died", (s) => s.retries);
    perHandler("crew_checkpoints_total", "Checkpoints stored", (s) => s.checkpoints);
    perHandler("crew_hedges_total", "Hedges: second attempts started for requests slower than config.hedgeAfterMs", (s) => s.hedges);
    perHandler("crew_hedge_wins_total", "Hedged requests the hedge answered first", (s) => s.hedgeWins);
  }

  /** Gauges that read the cluster when scraped rather than being kept up to date. */
  #liveGauges(cluster: Cluster): void {
    const registers = [this.registry];
    new Gauge({
      name: "crew_requests_in_flight",
      help: "Attempts running on nodes now",
      registers,
      collect() {
        let running = 0;
        for (const node of cluster.nodes) running += node.inFlight;
        this.set(running);
      },
    });
    new Gauge({
      name: "crew_queue_length",
      help: "Requests waiting for a node",
      registers,
      collect() {
        this.set(cluster.queueLength);
      },
    });
    new Gauge({
      name: "crew_nodes",
      help: "Nodes by state and kind",
      labelNames: ["state", "kind"],
      registers,
      collect() {
        const kinds = new Set(cluster.nodes.map((n) => n.kind));
        for (const kind of kinds) for (const state of NODE_STATES) this.set({ state, kind }, 0);
        for (const node of cluster.nodes) this.inc({ state: node.state, kind: node.kind });
      },
    });
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

/**
 * A histogram family read from Latency series at scrape time. prom-client's Histogram
 * has no way to set its buckets, so this is a metric of its own in the shape a
 * Registry reads (name, help, type, get, reset): the registry formats it like any other.
 */
function histogramFamily(name: string, help: string, all: HandlerSeries[], pick: (s: HandlerSeries) => Latency): Metric {
  const family = {
    name,
    help,
    type: "histogram",
    aggregator: "sum",
    get() {
      const values: Array<{ metricName: string; labels: Record<string, string | number>; value: number }> = [];
      for (const s of all) {
        const h = pick(s);
        if (h.count === 0) continue;
        let cumulative = 0;
        h.counts.forEach((n, i) => {
          cumulative += n;
          values.push({ metricName: `${name}_bucket`, labels: { handler: s.name, le: BUCKETS[i] ?? "+Inf" }, value: cumulative });
        });
        values.push({ metricName: `${name}_sum`, labels: { handler: s.name }, value: h.sum });
        values.push({ metricName: `${name}_count`, labels: { handler: s.name }, value: h.count });
      }
      return { name, help, type: "histogram", aggregator: "sum", values };
    },
    reset() {
      for (const s of all) pick(s).reset();
    },
  };
  return family as unknown as Metric;
}

const byCluster = new WeakMap<Cluster, ClusterMetrics>();

/** The cluster's metrics, created (and hooked up) on first use. */
export function metricsFor(cluster: Cluster): ClusterMetrics {
  let metrics = byCluster.get(cluster);
  if (!metrics) byCluster.set(cluster, (metrics = new ClusterMetrics(cluster)));
  return metrics;
}
