/**
 * The prom-client side of the cluster's metrics (metrics.ts keeps the numbers): one
 * Registry per cluster whose metrics read those numbers, and the cluster's live state,
 * when scraped. Imported at a cluster's first scrape.
 *
 * The primary's process metrics (prom-client's collectDefaultMetrics, with its default
 * names: process_cpu_seconds_total, nodejs_heap_size_used_bytes …) describe the process,
 * not a cluster, so one process-wide registry holds them and every cluster's scrape
 * appends it: a second cluster does not start a second set of GC observers. They start at
 * the process's first scrape: its CPU and memory figures are totals since the process
 * started, its GC and event-loop-lag figures count from that scrape on.
 */
import { collectDefaultMetrics, Counter, Gauge, type Metric, Registry } from "prom-client";
import type { NodeState } from "../nodes/compute-node.js";
import { registerStoreMetrics } from "../store/store-metrics.js";
import type { ClusterView } from "./cluster-view.js";
import { BUCKETS, type HandlerSeries, type Latency, type NodeCounts } from "./metrics-series.js";

const NODE_STATES: readonly NodeState[] = ["starting", "up", "down", "stopping", "stopped"];

/** What a cluster's registry reads: every handler's series now (the unknown one last; a reload adds some), the nodes' counts, the cluster. */
export interface MetricsSource {
  series: () => HandlerSeries[];
  nodes: ReadonlyMap<string, NodeCounts>;
  cluster: ClusterView;
}

/** A cluster's registry, ready to be scraped. */
export interface ScrapedRegistry {
  contentType: string;
  /** This cluster's metrics, then the process's. */
  text(): Promise<string>;
}

let processRegistry: Registry | null = null;

function processMetrics(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

export function scrapedRegistry(source: MetricsSource): ScrapedRegistry {
  const registry = new Registry();
  const registers = [registry];
  const all = source.series;
  counters(registers, all);
  for (const [name, help, pick] of [
    ["crew_request_queue_seconds", "Time from acceptance to the first attempt's start", (s: HandlerSeries) => s.queue],
    ["crew_request_run_seconds", "Time from the first attempt's start to the answer (retries included)", (s: HandlerSeries) => s.run],
    ["crew_request_duration_seconds", "Time from acceptance to the answer", (s: HandlerSeries) => s.duration],
  ] as const) {
    registry.registerMetric(histogramFamily(name, help, all, pick));
  }
  for (const [name, help, pick] of [
    ["crew_node_crashes_total", "Node deaths (exit, signal, OOM, lost channel, kill)", (n: NodeCounts) => n.crashes],
    ["crew_node_restarts_total", "Nodes restarted after a death", (n: NodeCounts) => n.restarts],
  ] as const) {
    new Counter({
      name,
      help,
      labelNames: ["node", "kind"],
      registers,
      collect() {
        this.reset();
        for (const n of source.nodes.values()) this.inc({ node: n.id, kind: n.kind }, pick(n));
      },
    });
  }
  liveGauges(registers, source.cluster);
  registerStoreMetrics(registry, () => source.cluster.storeMetrics());
  return {
    contentType: registry.contentType,
    async text() {
      const [mine, primary] = await Promise.all([registry.metrics(), processMetrics().metrics()]);
      return `${mine}\n${primary}`;
    },
  };
}

/** Counters published from the per-handler numbers when scraped. */
function counters(registers: Registry[], all: () => HandlerSeries[]): void {
  new Counter({
    name: "crew_requests_total",
    help: "Requests answered, by handler and outcome code (ok, or the error code; refusals at the door included)",
    labelNames: ["handler", "code"],
    registers,
    collect() {
      this.reset();
      for (const s of all()) for (const [code, n] of s.codes) this.inc({ handler: s.name, code }, n);
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
        for (const s of all()) if (s.zeroed || pick(s) > 0) this.inc({ handler: s.name }, pick(s));
      },
    });
  perHandler("crew_retries_total", "Attempts restarted on another node after their node died", (s) => s.retries);
  perHandler("crew_checkpoints_total", "Checkpoints stored", (s) => s.checkpoints);
  perHandler("crew_hedges_total", "Hedges: second attempts started for requests slower than config.hedgeAfterMs", (s) => s.hedges);
  perHandler("crew_hedge_wins_total", "Hedged requests the hedge answered first", (s) => s.hedgeWins);
}

/** Gauges that read the cluster when scraped rather than being kept up to date. */
function liveGauges(registers: Registry[], cluster: ClusterView): void {
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

/**
 * A histogram family read from Latency series at scrape time. prom-client's Histogram
 * has no way to set its buckets, so this is a metric of its own in the shape a
 * Registry reads (name, help, type, get, reset): the registry formats it like any other.
 */
function histogramFamily(name: string, help: string, all: () => HandlerSeries[], pick: (s: HandlerSeries) => Latency): Metric {
  const family = {
    name,
    help,
    type: "histogram",
    aggregator: "sum",
    get() {
      const values: Array<{ metricName: string; labels: Record<string, string | number>; value: number }> = [];
      for (const s of all()) {
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
      for (const s of all()) pick(s).reset();
    },
  };
  return family as unknown as Metric;
}
