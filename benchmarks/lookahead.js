// Lookahead side by side, in one run (issue 13): fib (~2 ms) on 2 thread nodes, hosted in
// a child process (threadHost "process", the default) and in the primary's process
// (threadHost "primary"), lookahead on and off, against plain worker threads running fib
// flat out (the ceiling); and a mix of 1 ms and 200 ms jobs (sleep-free CPU: fib sized to
// each) on the default thread host, lookahead on and off. 16 requests in flight through cluster.run.
// Rounds interleave the variants; each fib figure is divided by the ceiling of its own
// round, and the medians of those ratios are reported (the machine's speed drifts between
// rounds). Only ratios within one run mean anything.
// --crew PATH (repeatable; default this checkout): the fib variants for each built checkout
// side by side in the same rounds, to compare two versions of crew; --skip-mix leaves out the mix.
// Usage: node benchmarks/lookahead.js [--rounds 3] [--seconds 3] [--crew A --crew B] [--skip-mix]
import { once } from "node:events";
import { Worker } from "node:worker_threads";
import { parseArgs } from "node:util";
import { basename, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { calibrateFib } from "./lib/measure.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const { values } = parseArgs({
  options: {
    rounds: { type: "string", default: "3" },
    seconds: { type: "string", default: "3" },
    crew: { type: "string", multiple: true, default: [ROOT] },
    "skip-mix": { type: "boolean", default: false },
  },
});
const checkouts = await Promise.all(
  values.crew.map(async (dir) => ({ dir: resolve(dir), createCluster: (await import(pathToFileURL(join(resolve(dir), "dist/index.js")).href)).createCluster })),
);
const label = (checkout) => (checkouts.length > 1 ? ` [${basename(checkout.dir)}]` : "");
const ms = Number(values.seconds) * 1000;
const short = calibrateFib(1);
const fib2 = calibrateFib(2);
let long = short;
for (let n = short.n; n <= 40; n++) {
  const t0 = performance.now();
  (function f(k) { return k < 2 ? k : f(k - 1) + f(k - 2); })(n);
  if (performance.now() - t0 >= 200) { long = { n, ms: performance.now() - t0 }; break; }
}
const HANDLERS = new URL("../workers", import.meta.url).pathname;

async function crew(lookahead, payloadOf, threadHost = "process", { createCluster } = checkouts[0]) {
  const c = await createCluster({ handlers: HANDLERS, threads: 2, threadHost, nodeLookahead: lookahead, logLevel: "silent" });
  let done = 0;
  let i = 0;
  const end = performance.now() + ms;
  const lane = async () => {
    while (performance.now() < end) {
      await c.run("fib", payloadOf(i++));
      done++;
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: 16 }, lane));
  const rate = (done * 1000) / (performance.now() - t0);
  await c.close();
  return rate;
}

async function ceiling() {
  const counts = await Promise.all([0, 1].map(async () => {
    const w = new Worker(new URL("./lib/fib-loop.js", import.meta.url), { workerData: { n: fib2.n, ms } });
    const [count] = await once(w, "message");
    await w.terminate();
    return count;
  }));
  return ((counts[0] + counts[1]) * 1000) / ms;
}

// One 200 ms job in every 50: the mix's work is half short, half long.
const mix = (i) => ({ n: i % 50 === 0 ? long.n : short.n });
const CEILING = "ceiling: 2 plain threads, no dispatch";
const variants = { [CEILING]: ceiling };
for (const checkout of checkouts) {
  const fib = () => ({ n: fib2.n });
  variants[`fib, 2 hosted nodes, lookahead on${label(checkout)}`] = () => crew(1, fib, "process", checkout);
  variants[`fib, 2 hosted nodes, lookahead off${label(checkout)}`] = () => crew(0, fib, "process", checkout);
  variants[`fib, 2 nodes in the primary, lookahead on${label(checkout)}`] = () => crew(1, fib, "primary", checkout);
  variants[`fib, 2 nodes in the primary, lookahead off${label(checkout)}`] = () => crew(0, fib, "primary", checkout);
}
if (!values["skip-mix"]) {
  variants["mix 1 ms + 200 ms, lookahead on"] = () => crew(1, mix);
  variants["mix 1 ms + 200 ms, lookahead off"] = () => crew(0, mix);
}
const results = Object.fromEntries(Object.keys(variants).map((k) => [k, []]));
const ofCeiling = Object.fromEntries(Object.keys(variants).map((k) => [k, []]));
for (let r = 0; r < Number(values.rounds); r++) {
  for (const [k, f] of Object.entries(variants)) results[k].push(await f());
  for (const k of Object.keys(variants)) ofCeiling[k].push(results[k][r] / results[CEILING][r]);
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const m = Object.fromEntries(Object.entries(results).map(([k, xs]) => [k, median(xs)]));
console.log(`fib(${fib2.n}) ≈ ${fib2.ms.toFixed(2)} ms; mix: fib(${short.n}) ≈ ${short.ms.toFixed(2)} ms and fib(${long.n}) ≈ ${long.ms.toFixed(0)} ms; median of ${values.rounds} × ${values.seconds} s`);
for (const [k, v] of Object.entries(m)) console.log(`  ${k}: ${v.toFixed(0)} req/s`);
for (const checkout of checkouts) {
  for (const where of ["hosted nodes", "nodes in the primary"]) {
    const on = median(ofCeiling[`fib, 2 ${where}, lookahead on${label(checkout)}`]);
    const off = median(ofCeiling[`fib, 2 ${where}, lookahead off${label(checkout)}`]);
    console.log(`fib on 2 ${where}${label(checkout)} × its round's ceiling (median): lookahead on ${on.toFixed(2)}, off ${off.toFixed(2)}`);
  }
}
if (!values["skip-mix"]) console.log(`mix, lookahead on ÷ off: ${(m["mix 1 ms + 200 ms, lookahead on"] / m["mix 1 ms + 200 ms, lookahead off"]).toFixed(2)}`);
