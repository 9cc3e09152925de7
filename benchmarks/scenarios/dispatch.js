// Scenario 1, dispatch overhead: the cheapest request (echo) through crew's TCP port,
// through a naive `net` server that calls piscina.run per request, and through the same
// server answering inline on its own thread. Same NDJSON framing, same load generator,
// same connections and pipeline depth; crew and piscina both get 2 threads.
import { startServer } from "../lib/servers.js";
import { bestOfRounds, perSecond, ratio, tcpLoad } from "../lib/measure.js";

export const id = "dispatch";
export const title = "Dispatch overhead: echo over TCP";
const THREADS = 2;
const LOAD = { handler: "echo", payload: { hello: "world" }, connections: 8, pipeline: 32 };

export async function run({ durationMs, rounds, log }) {
  const servers = {};
  try {
    servers.crew = await startServer("crew.js", ["--threads", String(THREADS)]);
    servers.piscina = await startServer("net-baseline.js", ["--mode", "piscina", "--threads", String(THREADS)]);
    servers.inline = await startServer("net-baseline.js", ["--mode", "inline"]);
    const load = (port) => (ms) => tcpLoad({ port, ...LOAD, durationMs: ms });
    const names = {
      crew: `crew, ${THREADS} thread nodes`,
      piscina: `net + piscina.run per request, ${THREADS} threads`,
      inline: "net, answered inline",
    };
    const best = await bestOfRounds(
      { [names.crew]: load(servers.crew.port), [names.piscina]: load(servers.piscina.port), [names.inline]: load(servers.inline.port) },
      { rounds, durationMs, log },
    );
    const crew = best[names.crew];
    const piscina = best[names.piscina];
    const inline = best[names.inline];
    const rows = Object.entries(best).map(([name, f]) => [
      name, perSecond(f.throughput), f.p50.toFixed(2), f.p99.toFixed(2), `${ratio(f.throughput, piscina.throughput)}×`, `${ratio(f.throughput, inline.throughput)}×`,
    ]);
    const vsPiscina = ratio(crew.throughput, piscina.throughput);
    const vsInline = ratio(crew.throughput, inline.throughput);
    return {
      measures: `echo ${JSON.stringify(LOAD.payload)}, ${LOAD.connections} connections × ${LOAD.pipeline} in flight, best of ${rounds} × ${durationMs / 1000} s`,
      columns: ["server", "req/s", "p50 ms", "p99 ms", "× naive piscina", "× inline"],
      rows,
      raw: best,
      targets: [
        { target: "crew TCP echo ≥ 2× naive net + piscina", value: `${vsPiscina}×`, met: vsPiscina >= 2 },
        { target: "crew TCP echo ≥ 0.5× inline net server", value: `${vsInline}×`, met: vsInline >= 0.5 },
      ],
      chart: { unit: "× inline", bars: Object.entries(best).map(([name, f]) => ({ label: name, value: f.throughput / inline.throughput, baseline: name !== names.crew })) },
    };
  } finally {
    await Promise.all(Object.values(servers).map((s) => s.close()));
  }
}
