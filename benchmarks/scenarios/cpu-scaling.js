// Scenario 2, CPU scaling: a CPU-bound handler (fib, n calibrated to ~2 ms here) on crew
// with 1, 2 and 4 thread nodes, against the same fib answered inline by one thread (the
// net baseline). Ideal crew is min(N, cores) × inline; 4 nodes on 2 cores shows what
// oversubscription costs. The load generator and crew's primary share those cores too.
// The ceiling row is fib run flat out on every core by plain worker threads in the same
// run: on a shared machine the cores rarely give min(N, cores) × inline, and this shows
// what they did give, so a miss can be split between crew and the machine.
import { availableParallelism } from "node:os";
import { once } from "node:events";
import { Worker } from "node:worker_threads";
import { startServer } from "../lib/servers.js";
import { bestOfRounds, calibrateFib, perSecond, ratio, round, tcpLoad } from "../lib/measure.js";

export const id = "cpu-scaling";
export const title = "CPU scaling: fib on 1..N nodes";
const NODES = [1, 2, 4];
const CEILING = "ceiling: fib in a loop on every core, no dispatch";

/** `threads` worker threads running fib(n) flat out for `ms`: what the cores give right now. */
async function ceiling(threads, n, ms) {
  const counts = await Promise.all(
    Array.from({ length: threads }, async () => {
      const worker = new Worker(new URL("../lib/fib-loop.js", import.meta.url), { workerData: { n, ms } });
      const [count] = await once(worker, "message");
      await worker.terminate();
      return count;
    }),
  );
  return { throughput: (counts.reduce((a, b) => a + b, 0) * 1000) / ms, p50: NaN, p99: NaN };
}

export async function run({ durationMs, rounds, log }) {
  const cores = availableParallelism();
  const { n, ms } = calibrateFib(2);
  log(`  fib(${n}) takes ${ms.toFixed(2)} ms here; ${cores} cores`);
  const servers = {};
  try {
    servers.inline = await startServer("net-baseline.js", ["--mode", "inline"]);
    for (const nodes of NODES) servers[nodes] = await startServer("crew.js", ["--threads", String(nodes)]);
    const load = (port) => (d) => tcpLoad({ port, handler: "fib", payload: { n }, connections: 4, pipeline: 4, durationMs: d });
    const variants = { "inline, 1 thread": load(servers.inline.port) };
    for (const nodes of NODES) variants[`crew, ${nodes} node${nodes > 1 ? "s" : ""}`] = load(servers[nodes].port);
    variants[CEILING] = (d) => ceiling(cores, n, d);
    const best = await bestOfRounds(variants, { rounds, durationMs, log });
    const inline = best["inline, 1 thread"].throughput;
    const top = best[CEILING].throughput;
    const rows = [];
    const targets = [];
    for (const [name, f] of Object.entries(best)) {
      const nodes = name.startsWith("crew") ? Number(/(\d+) node/.exec(name)[1]) : null;
      const ideal = name === CEILING ? cores : nodes === null ? 1 : Math.min(nodes, cores);
      const efficiency = round(f.throughput / inline / ideal, 2);
      const latency = name === CEILING ? ["—", "—"] : [f.p50.toFixed(2), f.p99.toFixed(2)];
      rows.push([name, perSecond(f.throughput), ...latency, `${ratio(f.throughput, inline)}×`, `${ideal}×`, efficiency.toFixed(2), `${ratio(f.throughput, top)}×`]);
      if (nodes !== null) {
        targets.push({
          target: `${nodes} node${nodes > 1 ? "s" : ""}: ≥ 0.9 × min(${nodes}, ${cores}) × inline`,
          value: `${ratio(f.throughput, inline)}× (${efficiency} of ideal${nodes > 1 ? `; ${ratio(f.throughput, top)}× the machine's ceiling` : ""})`,
          met: efficiency >= 0.9,
        });
      }
    }
    return {
      measures: `fib(${n}) ≈ ${ms.toFixed(2)} ms, 4 connections × 4 in flight, best of ${rounds} × ${durationMs / 1000} s, ${cores} cores`,
      columns: ["server", "req/s", "p50 ms", "p99 ms", "× inline", "ideal", "efficiency", "× ceiling"],
      rows,
      raw: { fib: { n, ms }, cores, ...best },
      targets,
      chart: { unit: "× inline", bars: Object.entries(best).map(([name, f]) => ({ label: name, value: f.throughput / inline, baseline: !name.startsWith("crew") })) },
    };
  } finally {
    await Promise.all(Object.values(servers).map((s) => s.close()));
  }
}
