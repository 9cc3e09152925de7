// Startup and footprint, side by side in one run (issue 13):
// - `crew start --threads 2` (handlers: workers/, which holds sum.ts) to the first
//   answered TCP ping, against node:cluster with 2 workers to its first HTTP answer;
// - a thread node's RSS over an idle worker thread: (RSS with 3 nodes − RSS with 1) / 2,
//   against the same difference for plain idle worker threads.
// Each figure is the median of --rounds interleaved rounds; on a shared machine only
// the ratios between columns of one run mean anything.
// Usage: node benchmarks/startup.js [--rounds 7] [--crew <checkout>]... (default: this one)
import { spawn } from "node:child_process";
import { once } from "node:events";
import { rmSync } from "node:fs";
import { createConnection } from "node:net";
import { createInterface } from "node:readline";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { freePort } from "./lib/free-port.js";
import { startServer } from "./lib/servers.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const WORKERS = join(ROOT, "workers");
const { values } = parseArgs({ options: { rounds: { type: "string", default: "7" }, crew: { type: "string", multiple: true, default: [ROOT] } } });
const rounds = Number(values.rounds);
const checkouts = values.crew.map((c) => resolve(c));


/** One NDJSON echo request; resolves on its reply, rejects when the connection fails. */
const ping = (port) =>
  new Promise((res, rej) => {
    const c = createConnection({ port, host: "127.0.0.1" });
    c.once("error", rej);
    c.once("connect", () => c.write('{"id":1,"handler":"echo","payload":1}\n'));
    c.once("data", () => (c.destroy(), res()));
  });

/**
 * `crew start` to its first answered ping, ms. Like node:cluster's start (which says so
 * over IPC), crew says when it listens (its `listening` log line): the ping is sent then.
 * (Pinging every 2 ms until one answers, as this did before, took a share of the 2 cores
 * the start itself needs, and node:cluster was not measured that way.)
 */
async function crewStartMs(checkout) {
  const [port, httpPort] = [await freePort(), await freePort()];
  const t0 = performance.now();
  const child = spawn(process.execPath, [join(checkout, "bin/crew.js"), "start", "--threads", "2", "--handlers", WORKERS, "--port", String(port), "--http-port", String(httpPort), "--log-level", "info"], { stdio: ["ignore", "pipe", "inherit"] });
  const lines = createInterface({ input: child.stdout });
  for await (const line of lines) if (line.includes('"msg":"listening"')) break;
  child.stdout.resume(); // the rest of its log goes nowhere
  await ping(port);
  const ms = performance.now() - t0;
  child.kill("SIGTERM");
  await once(child, "exit");
  return ms;
}

async function nodeClusterMs() {
  const t0 = performance.now();
  const server = await startServer("node-cluster-http.js", ["--workers", "2"]);
  await fetch(`http://127.0.0.1:${server.httpPort}/v1/run/echo`, { method: "POST", body: "1" }).then((r) => r.text());
  const ms = performance.now() - t0;
  await server.close();
  return ms;
}

/**
 * RSS (bytes) of a process holding `n` crew thread nodes, or `n` idle worker threads
 * (checkout null). The threads live in the measured process (threadHost "primary"): by
 * default they would live in the thread host, another process.
 */
async function rssWith(checkout, n) {
  const code = checkout
    ? `const { createCluster } = await import(${JSON.stringify(join(checkout, "dist/index.js"))});
       const c = await createCluster({ handlers: ${JSON.stringify(WORKERS)}, threads: ${n}, threadHost: "primary", logLevel: "silent" });
       await c.run("echo", 1); globalThis.gc?.(); await new Promise((r) => setTimeout(r, 300));
       console.log(process.memoryUsage().rss); await c.close();`
    : `const { Worker } = await import("node:worker_threads");
       const ws = Array.from({ length: ${n} }, () => new Worker("import { parentPort } from 'node:worker_threads'; parentPort.once('message', () => {}); parentPort.postMessage(1)", { eval: true }));
       await Promise.all(ws.map((w) => new Promise((r) => w.once("message", r)))); await new Promise((r) => setTimeout(r, 300));
       console.log(process.memoryUsage().rss); ws.forEach((w) => w.terminate());`;
  const child = spawn(process.execPath, ["--input-type=module", "-e", code], { stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  child.stdout.on("data", (d) => (out += d));
  await once(child, "exit");
  return Number(out.trim());
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const cols = { "node:cluster": [] };
const perNode = { "idle worker thread": [] };
for (const c of checkouts) {
  cols[c] = [];
  perNode[c] = [];
}
// The first start compiles sum.ts; the rounds below measure the usual, cached start.
for (const c of checkouts) {
  rmSync(join(WORKERS, ".crew-cache"), { recursive: true, force: true });
  const t0 = performance.now();
  await crewStartMs(c);
  console.log(`${c}: first start (compiling sum.ts when it does): ${(performance.now() - t0).toFixed(0)} ms`);
}
for (let r = 0; r < rounds; r++) {
  cols["node:cluster"].push(await nodeClusterMs());
  for (const c of checkouts) cols[c].push(await crewStartMs(c));
  perNode["idle worker thread"].push(((await rssWith(null, 3)) - (await rssWith(null, 1))) / 2);
  for (const c of checkouts) perNode[c].push(((await rssWith(c, 3)) - (await rssWith(c, 1))) / 2);
}
const base = median(cols["node:cluster"]);
console.log(`\nstart to first answer, median of ${rounds} (2 nodes); ratio to node:cluster in the same run`);
for (const [name, xs] of Object.entries(cols)) console.log(`  ${name}: ${median(xs).toFixed(0)} ms  (${(median(xs) / base).toFixed(2)}×)`);
const idle = median(perNode["idle worker thread"]);
console.log(`\nRSS per thread node, median of ${rounds}; over an idle worker thread`);
for (const [name, xs] of Object.entries(perNode)) console.log(`  ${name}: ${(median(xs) / 2 ** 20).toFixed(1)} MB  (+${((median(xs) - idle) / 2 ** 20).toFixed(1)} MB)`);
