// Scenario: zero-downtime reload. The same crew server (2 thread nodes, its own copy of
// workers/echo.js) under the same TCP load, without and with reloads: in the "reload"
// runs the file is edited and POST /v1/reload sent again as soon as the last one
// answered, for the whole run. Rounds alternate. Errors must be 0 in both; p99 shows what
// a reload costs the requests that cross it.
import { appendFileSync, copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startLoad } from "../../dist/bench/load.js";
import { latencyFigures } from "../../dist/bench/report.js";
import { perSecond, ratio } from "../lib/measure.js";
import { startServer } from "../lib/servers.js";

export const id = "reload";
export const title = "Reload under load: errors and p99 with and without reloads";
const THREADS = 2;
const LOAD = { handler: "echo", payload: { hello: "world" }, connections: 8, pipeline: 8 };

async function loadRun(server, durationMs, reloading, dir) {
  let reloads = 0;
  let reloadFailures = 0;
  let stop = false;
  const reloader = (async () => {
    while (reloading && !stop) {
      appendFileSync(join(dir, "echo.js"), `// edit ${reloads}\n`);
      const res = await fetch(`http://127.0.0.1:${server.httpPort}/v1/reload`, { method: "POST" });
      await res.text();
      if (res.ok) reloads++;
      else reloadFailures++;
    }
  })();
  const r = await startLoad({ host: "127.0.0.1", port: server.port, ...LOAD, durationMs }).done;
  stop = true;
  await reloader;
  const latency = latencyFigures(r.histogram);
  const errors = Object.values(r.errors).reduce((a, b) => a + b, 0);
  return { throughput: (r.completed * 1000) / r.elapsedMs, completed: r.completed, errors, p50: latency.p50, p99: latency.p99, p999: latency.p999, reloads, reloadFailures };
}

export async function run({ durationMs, rounds, log }) {
  const dir = mkdtempSync(join(tmpdir(), "crew-bench-reload-"));
  copyFileSync(fileURLToPath(new URL("../../workers/echo.js", import.meta.url)), join(dir, "echo.js"));
  const server = await startServer("crew.js", ["--threads", String(THREADS), "--handlers", dir, "--http"]);
  try {
    await loadRun(server, 500, false, dir); // warm-up
    const sum = { steady: [], reloading: [] };
    for (let r = 1; r <= rounds; r++) {
      for (const variant of ["steady", "reloading"]) {
        const f = await loadRun(server, durationMs, variant === "reloading", dir);
        sum[variant].push(f);
        log(`  round ${r} ${variant}: ${perSecond(f.throughput)}/s, ${f.errors} errors, p99 ${f.p99} ms${variant === "reloading" ? `, ${f.reloads} reloads` : ""}`);
      }
    }
    // Per variant: all requests and errors, and the median round's p99 (a shared machine is noisy).
    const total = (list, k) => list.reduce((a, f) => a + f[k], 0);
    const median = (list, k) => [...list.map((f) => f[k])].sort((a, b) => a - b)[Math.floor(list.length / 2)];
    const fig = (list) => ({ completed: total(list, "completed"), errors: total(list, "errors"), reloads: total(list, "reloads"), reloadFailures: total(list, "reloadFailures"), p50: median(list, "p50"), p99: median(list, "p99"), p999: median(list, "p999"), throughput: median(list, "throughput") });
    const steady = fig(sum.steady);
    const reloading = fig(sum.reloading);
    const p99Ratio = ratio(reloading.p99, steady.p99);
    return {
      measures: `echo over TCP, ${LOAD.connections} connections × ${LOAD.pipeline} in flight, ${THREADS} thread nodes, ${rounds} × ${durationMs / 1000} s per variant, rounds alternating; reloads back to back; median round's figures; shared machine, so read the ratios`,
      columns: ["variant", "requests", "errors", "reloads", "req/s", "p50 ms", "p99 ms", "p99.9 ms"],
      rows: [
        ["no reload", String(steady.completed), String(steady.errors), "0", perSecond(steady.throughput), String(steady.p50), String(steady.p99), String(steady.p999)],
        ["reloading", String(reloading.completed), String(reloading.errors), String(reloading.reloads), perSecond(reloading.throughput), String(reloading.p50), String(reloading.p99), String(reloading.p999)],
        ["ratio (reloading / none)", "", "", "", `${ratio(reloading.throughput, steady.throughput)}×`, `${ratio(reloading.p50, steady.p50)}×`, `${p99Ratio}×`, `${ratio(reloading.p999, steady.p999)}×`],
      ],
      raw: { steady, reloading, rounds: sum },
      targets: [{ target: "0 failed requests during reloads", value: `${reloading.errors} of ${reloading.completed} (${reloading.reloads} reloads)`, met: reloading.errors === 0 && steady.errors === 0 && reloading.reloads > 0 }],
      chart: { unit: "ms, p99", bars: [{ label: "no reload", value: steady.p99, baseline: true }, { label: "reloading", value: reloading.p99 }] },
    };
  } finally {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
