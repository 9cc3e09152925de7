/**
 * The store's Prometheus metrics, read when scraped: idempotent runs replayed and joined,
 * and for the journal its writes, a histogram of its commits' latency, and the writes
 * kept for retry after a failed commit (and those dropped past their cap).
 */
import { Counter, Gauge, type Metric, type Registry } from "prom-client";
import type { KeyedStats } from "./keyed.js";
import type { StoreCounters } from "./store.js";

export function registerStoreMetrics(registry: Registry, read: () => { stats: KeyedStats; counters: StoreCounters }): void {
  const registers = [registry];
  const counter = (name: string, help: string, pick: () => number) =>
    new Counter({
      name,
      help,
      registers,
      collect() {
        this.reset();
        this.inc(pick());
      },
    });
  counter("crew_idempotent_replayed_total", "Runs answered with the reply kept for their idempotency key", () => read().stats.replayed);
  counter("crew_idempotent_joined_total", "Runs that joined the unanswered request holding their idempotency key", () => read().stats.joined);
  const gauge = (name: string, help: string, pick: () => number) =>
    new Gauge({
      name,
      help,
      registers,
      collect() {
        this.set(pick());
      },
    });
  counter("crew_journal_writes_total", "Records written to the journal (requests, attempts, checkpoints, replies, deletions)", () => read().counters.writes);
  gauge("crew_journal_retained_writes", "Journal writes whose commit failed, kept to be retried", () => read().counters.retained?.writes ?? 0);
  gauge("crew_journal_retained_bytes", "Bytes held by the journal writes kept to be retried", () => read().counters.retained?.bytes ?? 0);
  counter("crew_journal_dropped_writes_total", "Journal writes kept for retry that were dropped (lost): past their memory cap, or failing alone with an error no retry fixes", () => read().counters.retained?.dropped ?? 0);
  registry.registerMetric(commitHistogram(read));
}

/** crew_journal_commit_seconds, in the shape a Registry reads (prom-client's Histogram cannot be fed bucket counts). */
function commitHistogram(read: () => { counters: StoreCounters }): Metric {
  const name = "crew_journal_commit_seconds";
  const help = "Time to commit one group of journal writes";
  const get = () => {
    const commits = read().counters.commits;
    const values: Array<{ metricName: string; labels: Record<string, string | number>; value: number }> = [];
    if (commits) {
      let cumulative = 0;
      commits.counts.forEach((n, i) => {
        cumulative += n;
        values.push({ metricName: `${name}_bucket`, labels: { le: commits.buckets[i] ?? "+Inf" }, value: cumulative });
      });
      values.push({ metricName: `${name}_sum`, labels: {}, value: commits.sum });
      values.push({ metricName: `${name}_count`, labels: {}, value: commits.count });
    }
    return { name, help, type: "histogram", aggregator: "sum", values };
  };
  return { name, help, type: "histogram", aggregator: "sum", get, reset() {} } as unknown as Metric;
}
