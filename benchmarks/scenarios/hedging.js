// Scenario: hedged requests on a slow tail ("The Tail at Scale", Dean & Barroso 2013:
// 1,800 → 74 ms at the 99.9th percentile for 2% more requests). The same handler (most
// runs 1 ms, 2% 50 ms) with and without `hedgeAfterMs: "p95"`, in one cluster of 4
// thread nodes with 2 requests in flight (so a free node exists for a hedge), rounds
// alternating. Reports p50/p99/p99.9 of each, and the extra attempts hedging cost.
import { fileURLToPath } from "node:url";
import { createCluster } from "../../dist/index.js";
import { percentile } from "../../dist/bench/report.js";
import { ratio, round } from "../lib/measure.js";

export const id = "hedging";
export const title = "Hedged requests: a 2% slow tail (1 ms / 50 ms)";
const HANDLERS = fileURLToPath(new URL("../handlers-tail/", import.meta.url));
const THREADS = 4;
const IN_FLIGHT = 2;

/** `count` requests to `handler`, IN_FLIGHT at a time; their latencies in ms. */
async function measure(cluster, handler, count) {
  const latencies = [];
  let sent = 0;
  const loop = async () => {
    while (sent < count) {
      sent++;
      const t = performance.now();
      const reply = await cluster.call(handler, {});
      if (!reply.ok) throw new Error(`${handler}: ${reply.error.code} ${reply.error.message}`);
      latencies.push(performance.now() - t);
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, loop));
  return latencies;
}

const figures = (all) => {
  const sorted = [...all].sort((a, b) => a - b);
  return { requests: sorted.length, p50: round(percentile(sorted, 50), 2), p99: round(percentile(sorted, 99), 2), p999: round(percentile(sorted, 99.9), 2) };
};

export async function run({ durationMs, rounds, log }) {
  const cluster = await createCluster({ handlers: HANDLERS, threads: THREADS, logLevel: "silent" });
  try {
    // ~2 ms per request and IN_FLIGHT at a time: as many requests per round as fit the duration.
    const perRound = Math.max(1000, Math.round(durationMs));
    await measure(cluster, "tail", 200);
    await measure(cluster, "tail-hedged", 200); // the running p95 needs run times first
    const samples = { plain: [], hedged: [] };
    const before = (await cluster.status()).requests;
    for (let r = 1; r <= rounds; r++) {
      samples.plain.push(...(await measure(cluster, "tail", perRound)));
      samples.hedged.push(...(await measure(cluster, "tail-hedged", perRound)));
      log(`  round ${r}: ${perRound} requests each`);
    }
    const after = (await cluster.status()).requests;
    const hedges = after.hedges - before.hedges;
    const wins = after.hedgeWins - before.hedgeWins;
    const plain = figures(samples.plain);
    const hedged = figures(samples.hedged);
    const extra = round((100 * hedges) / hedged.requests, 2);
    const gain = ratio(plain.p999, hedged.p999);
    return {
      measures: `${THREADS} thread nodes, ${IN_FLIGHT} requests in flight, ${rounds} × ${perRound} requests per variant, rounds alternating; shared machine, so read the ratios`,
      columns: ["handler", "requests", "p50 ms", "p99 ms", "p99.9 ms", "extra attempts"],
      rows: [
        ["not hedged", String(plain.requests), String(plain.p50), String(plain.p99), String(plain.p999), "0%"],
        ["hedgeAfterMs: p95", String(hedged.requests), String(hedged.p50), String(hedged.p99), String(hedged.p999), `${extra}% (${hedges} hedges, ${wins} won)`],
        ["ratio (not hedged / hedged)", "", `${ratio(plain.p50, hedged.p50)}×`, `${ratio(plain.p99, hedged.p99)}×`, `${gain}×`, ""],
      ],
      raw: { plain, hedged, hedges, wins, skipped: after.hedgesSkipped - before.hedgesSkipped },
      targets: [
        { target: "p99.9 at least 5× lower with hedging", value: `${gain}×`, met: Number(gain) >= 5 },
        { target: "at most 5% extra attempts", value: `${extra}%`, met: extra <= 5 + 1000 / hedged.requests },
      ],
      chart: { unit: "ms, p99.9", bars: [{ label: "not hedged", value: plain.p999, baseline: true }, { label: "hedged (p95)", value: hedged.p999 }] },
    };
  } finally {
    await cluster.close();
  }
}
