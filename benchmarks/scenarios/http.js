// Scenario 3, HTTP: crew's HTTP front (one primary, 2 thread nodes) against node:cluster
// with 2 worker processes answering inline, both on POST /v1/run/:handler, loaded by
// autocannon from this process. Two handlers: echo (the front's own cost) and fib with
// n calibrated to ~1 ms (where spreading CPU work is the point).
import autocannon from "autocannon";
import { startServer } from "../lib/servers.js";
import { bestOfRounds, calibrateFib, perSecond, ratio } from "../lib/measure.js";

export const id = "http";
export const title = "HTTP: crew's front vs node:cluster";
const WORKERS = 2;
const CONNECTIONS = 32;

/** autocannon reports latency in whole milliseconds. */
const wholeMs = (ms) => (ms < 1 ? "< 1" : String(ms));

async function cannon(port, handler, body, durationMs) {
  const r = await autocannon({
    url: `http://127.0.0.1:${port}/v1/run/${handler}`,
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
    connections: CONNECTIONS,
    pipelining: 1,
    duration: durationMs / 1000,
  });
  if (r.non2xx > 0 || r.errors > 0) throw new Error(`${handler} on port ${port}: ${r.non2xx} non-2xx replies, ${r.errors} errors`);
  return { throughput: r["2xx"] / r.duration, p50: r.latency.p50, p99: r.latency.p99 };
}

export async function run({ durationMs, rounds, log }) {
  const { n, ms } = calibrateFib(1);
  log(`  fib(${n}) takes ${ms.toFixed(2)} ms here`);
  const servers = {};
  try {
    try {
      servers.crew = await startServer("crew.js", ["--threads", String(WORKERS), "--http"]);
    } catch (err) {
      return { pending: `crew's HTTP front did not start: ${err.message}` };
    }
    servers.cluster = await startServer("node-cluster-http.js", ["--workers", String(WORKERS)]);
    const rows = [];
    const targets = [];
    const bars = [];
    const raw = { fib: { n, ms } };
    for (const [handler, body] of [["echo", { hello: "world" }], ["fib", { n }]]) {
      const crewName = `crew, ${handler}`;
      const clusterName = `node:cluster, ${handler}`;
      const best = await bestOfRounds(
        {
          [crewName]: (d) => cannon(servers.crew.httpPort, handler, body, d),
          [clusterName]: (d) => cannon(servers.cluster.httpPort, handler, body, d),
        },
        { rounds, durationMs, log },
      );
      const crew = best[crewName];
      const base = best[clusterName];
      raw[handler] = best;
      for (const [name, f] of Object.entries(best)) {
        rows.push([name, perSecond(f.throughput), wholeMs(f.p50), wholeMs(f.p99), `${ratio(f.throughput, base.throughput)}×`]);
        bars.push({ label: name, value: f.throughput / base.throughput, baseline: name === clusterName });
      }
      if (handler === "fib") {
        const r = ratio(crew.throughput, base.throughput);
        targets.push({ target: "crew HTTP ≥ node:cluster req/s on the ~1 ms CPU handler", value: `${r}×`, met: r >= 1 });
        targets.push({ target: "… with a lower p99", value: `${crew.p99} ms vs ${base.p99} ms`, met: crew.p99 < base.p99 });
      }
    }
    return {
      measures: `autocannon, ${CONNECTIONS} connections, no pipelining, ${WORKERS} nodes vs ${WORKERS} cluster workers, fib(${n}) ≈ ${ms.toFixed(2)} ms, best of ${rounds} × ${durationMs / 1000} s`,
      columns: ["server, handler", "req/s", "p50 ms", "p99 ms", "× node:cluster"],
      rows,
      raw,
      targets,
      chart: { unit: "× node:cluster", bars },
    };
  } finally {
    await Promise.all(Object.values(servers).map((s) => s.close()));
  }
}
