// The primary's CPU per request (issue 13), side by side for several crew checkouts in one run.
//
// Usage:
//   node benchmarks/primary-cpu.js [--seconds 5] [--rounds 3] [--dist PATH] [-- extra crew start flags]
//   node benchmarks/primary-cpu.js --variant before=/work/wt/before --variant now=. \
//     --variant "primary=.:--thread-host primary"
// A variant is NAME=PATH[:FLAGS]: a crew checkout (built: its dist/ and bin/crew.js) and
// flags added to its `crew start` (and, as createCluster options, to its cluster.run one).
// Without --variant there is one: --dist (default: this checkout) with the flags after `--`.
//
// Scenarios, per variant (echo {"hello":"world"} on the checkout's own workers/):
//   tcp       `crew start --threads 2` as a child process; TCP, 8 connections × 32 in flight
//   http      the same primary's HTTP front; autocannon, 32 keep-alive connections
//   one-at-a-time  the same primary; TCP, 64 connections × 1 in flight
//   tcp, processes  `crew start --threads 0 --processes 2`; TCP, 8 × 32
//   cluster.run     createCluster({ threads: 2 }) from the checkout's dist/ in this process,
//                   256 calls in flight (awaiting each and calling again)
// and once, as the baseline of one-at-a-time: benchmarks/servers/net-baseline.js --mode
// inline (the dispatch scenario's "inline"), TCP, 64 × 1.
// The load always comes from this process (this checkout's load generator and autocannon).
//
// Measured: the CPU time (utime + stime, clock ticks, /proc/PID/task/PID/stat) of the
// primary's MAIN THREAD only, read just before and just after each measured window, divided
// by the requests answered in it: µs per request. Main thread only, since thread nodes in the
// primary's process (--thread-host primary, or crew before it had a thread host) would
// otherwise count too. For cluster.run the primary is this process, so its figure also holds
// the callers' own cost (the promises and the loop). Also req/s over the window.
// Rounds interleave every variant and scenario (A B C, A B C …) after one short warm-up
// each; the figures are medians over the rounds. On a shared machine only the ratios and
// the CPU figures within one run mean anything.
import { spawn } from "node:child_process";
import { connect } from "node:net";
import { resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import autocannon from "autocannon";
import { freePort } from "./lib/free-port.js";
import { threadCpuMicros } from "./lib/hosts.js";
import { perSecond, ratio, round, tcpLoad } from "./lib/measure.js";
import { startServer } from "./lib/servers.js";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    seconds: { type: "string", default: "5" },
    rounds: { type: "string", default: "3" },
    dist: { type: "string", default: new URL("..", import.meta.url).pathname },
    variant: { type: "string", multiple: true, default: [] },
  },
});
const durationMs = Number(values.seconds) * 1000;
const rounds = Number(values.rounds);
const PAYLOAD = { hello: "world" };
const PIPELINED = { connections: 8, pipeline: 32 };
const ONE_AT_A_TIME = { connections: 64, pipeline: 1 };
const HTTP_CONNECTIONS = 32;
const RUN_IN_FLIGHT = 256;

const variants = values.variant.length
  ? values.variant.map((spec) => {
      const [name, rest] = [spec.slice(0, spec.indexOf("=")), spec.slice(spec.indexOf("=") + 1)];
      const colon = rest.indexOf(":");
      const dist = colon < 0 ? rest : rest.slice(0, colon);
      const flags = colon < 0 ? [] : rest.slice(colon + 1).split(/\s+/).filter(Boolean);
      return { name, dist: resolve(dist), flags };
    })
  : [{ name: "crew", dist: resolve(values.dist), flags: positionals }];

/** The main thread's CPU time so far, µs (the process's other threads not counted). */
const mainThreadMicros = (pid) => threadCpuMicros(pid, pid);

/** Resolves true once an echo over TCP on `port` answers ok. */
function answers(port) {
  return new Promise((done) => {
    const socket = connect(port, "127.0.0.1");
    socket.setTimeout(1000, () => socket.destroy());
    socket.once("error", () => done(false)).once("close", () => done(false));
    socket.once("connect", () => socket.write('{"id":1,"handler":"echo","payload":1}\n'));
    socket.setEncoding("utf8").once("data", (line) => {
      done(line.includes('"ok":true'));
      socket.destroy();
    });
  });
}

/** `node DIST/bin/crew.js start …` in a process group of its own; resolves once it answers. */
async function startPrimary(variant, args) {
  const [port, httpPort] = [await freePort(), await freePort()];
  const argv = [`${variant.dist}/bin/crew.js`, "start", "--handlers", `${variant.dist}/workers`, "--port", String(port), "--http-port", String(httpPort), "--log-level", "warn", ...args, ...variant.flags];
  const child = spawn(process.execPath, argv, { detached: true, stdio: ["ignore", "ignore", "inherit"] });
  const exited = new Promise((done) => child.once("exit", done));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
    await exited;
    clearTimeout(timer);
    try {
      process.kill(-child.pid, "SIGKILL"); // anything of its group still there (the thread host)
    } catch {}
  };
  for (const end = Date.now() + 30_000; Date.now() < end; await sleep(100)) {
    if (child.exitCode !== null) break;
    if (await answers(port)) return { pid: child.pid, port, httpPort, stop };
  }
  await stop();
  throw new Error(`${variant.name}: crew start ${args.join(" ")} did not answer within 30 s`);
}

/** A measured window around `load` (which resolves with the requests it got answered). */
async function window(pid, load) {
  const t0 = performance.now();
  const cpu0 = mainThreadMicros(pid);
  const requests = await load();
  const cpu1 = mainThreadMicros(pid);
  const seconds = (performance.now() - t0) / 1000;
  return { reqPerSec: requests / seconds, usPerReq: (cpu1 - cpu0) / requests };
}

const tcp = (pid, port, shape) => (ms) => window(pid, async () => (await tcpLoad({ port, handler: "echo", payload: PAYLOAD, ...shape, durationMs: ms })).completed);

const http = (pid, port) => (ms) =>
  window(pid, async () => {
    const r = await autocannon({ url: `http://127.0.0.1:${port}/v1/run/echo`, method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(PAYLOAD), connections: HTTP_CONNECTIONS, duration: ms / 1000 });
    if (r.non2xx > 0 || r.errors > 0) throw new Error(`http on ${port}: ${r.non2xx} non-2xx, ${r.errors} errors`);
    return r["2xx"];
  });

/** createCluster options from `crew start` flags: --thread-host primary → { threadHost: "primary" }. */
function optionsOf(flags) {
  const options = {};
  for (let i = 0; i < flags.length; i += 2) {
    const key = flags[i].replace(/^--/, "").replace(/-(.)/g, (_, c) => c.toUpperCase());
    options[key] = Number.isNaN(Number(flags[i + 1])) ? flags[i + 1] : Number(flags[i + 1]);
  }
  return options;
}

const clusterRun = (cluster) => (ms) =>
  window(process.pid, async () => {
    let done = 0;
    const end = performance.now() + ms;
    const lane = async () => {
      for (; performance.now() < end; done++) await cluster.run("echo", PAYLOAD);
    };
    await Promise.all(Array.from({ length: RUN_IN_FLIGHT }, lane));
    return done;
  });

const stops = [];
const measures = {}; // "scenario|variant" → (ms) => Promise<{ reqPerSec, usPerReq }>
try {
  const inline = await startServer("net-baseline.js", ["--mode", "inline"]);
  stops.push(() => inline.close());
  measures["one-at-a-time|inline net server"] = tcp(inline.pid, inline.port, ONE_AT_A_TIME);
  for (const v of variants) {
    const threads = await startPrimary(v, ["--threads", "2"]);
    stops.push(threads.stop);
    const procs = await startPrimary(v, ["--threads", "0", "--processes", "2"]);
    stops.push(procs.stop);
    const { createCluster } = await import(`${v.dist}/dist/index.js`);
    const cluster = await createCluster({ handlers: `${v.dist}/workers`, threads: 2, processes: 0, logLevel: "silent", ...optionsOf(v.flags) });
    stops.push(() => cluster.close());
    measures[`tcp|${v.name}`] = tcp(threads.pid, threads.port, PIPELINED);
    measures[`http|${v.name}`] = http(threads.pid, threads.httpPort);
    measures[`one-at-a-time|${v.name}`] = tcp(threads.pid, threads.port, ONE_AT_A_TIME);
    measures[`tcp, processes|${v.name}`] = tcp(procs.pid, procs.port, PIPELINED);
    measures[`cluster.run|${v.name}`] = clusterRun(cluster);
  }
  const order = ["tcp", "http", "one-at-a-time", "tcp, processes", "cluster.run"].flatMap((s) => Object.keys(measures).filter((k) => k.startsWith(`${s}|`)));
  for (const key of order) await measures[key](500); // warm-up
  const got = Object.fromEntries(order.map((k) => [k, []]));
  for (let r = 1; r <= rounds; r++) {
    for (const key of order) {
      const f = await measures[key](durationMs);
      got[key].push(f);
      console.error(`round ${r} ${key.replace("|", ", ")}: ${perSecond(f.reqPerSec)} req/s, ${round(f.usPerReq, 1)} µs/req`);
    }
  }
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const m = Object.fromEntries(order.map((k) => [k, { reqPerSec: median(got[k].map((f) => f.reqPerSec)), usPerReq: median(got[k].map((f) => f.usPerReq)) }]));
  const load = { tcp: "8 conn × 32", http: `autocannon, ${HTTP_CONNECTIONS} conn`, "one-at-a-time": "64 conn × 1", "tcp, processes": "8 conn × 32, --threads 0 --processes 2", "cluster.run": `${RUN_IN_FLIGHT} in flight, in-process` };
  console.log(`\nMedian of ${rounds} rounds × ${values.seconds} s; primary's main-thread CPU per request. ${new Date().toISOString()}`);
  console.log(`Variants: ${variants.map((v) => `${v.name} = ${v.dist}${v.flags.length ? ` ${v.flags.join(" ")}` : ""}`).join("; ")}\n`);
  console.log("| scenario | variant | µs/req (main thread) | req/s |\n| --- | --- | --- | --- |");
  for (const key of order) {
    const [scenario, name] = key.split("|");
    console.log(`| ${scenario} (${load[scenario]}) | ${name} | ${round(m[key].usPerReq, 1)} | ${perSecond(m[key].reqPerSec)} |`);
  }
  console.log("\n| variant | one-at-a-time ÷ inline (req/s) | processes ÷ threads (TCP echo req/s) |\n| --- | --- | --- |");
  const inlineRate = m["one-at-a-time|inline net server"].reqPerSec;
  for (const v of variants) {
    console.log(`| ${v.name} | ${ratio(m[`one-at-a-time|${v.name}`].reqPerSec, inlineRate)}× | ${ratio(m[`tcp, processes|${v.name}`].reqPerSec, m[`tcp|${v.name}`].reqPerSec)}× |`);
  }
} finally {
  for (const stop of stops.reverse()) await stop();
}
