// Several hosts on one Redis: echo, and a ~1 ms CPU job, through 1, 2 and 3 hosts sharing
// a queue in Redis (AOF, fsync every second) against a single host without Redis, with 2
// thread nodes in total (3 with 3 hosts: one each); the CPU each request costs the hosts and Redis; and the time from SIGKILL of the
// host running a checkpointing job to the claim of its next attempt by another host
// (--host-timeout-ms at its default, 1000).
//
// The machine is shared with other engineers' runs: compare the ratios, not the figures.
import { Redis } from "ioredis";
import { bestOfRounds, perSecond, ratio, round, tcpLoad } from "../lib/measure.js";
import { cpuMicros, redisInstalled, startHost, startRedis } from "../lib/hosts.js";

export const id = "hosts";
export const title = "Several hosts on one Redis: echo throughput and takeover time";
const LOAD = { handler: "echo", payload: { hello: "world" }, connections: 8, pipeline: 32 };
/** The ~1 ms CPU job: fewer in flight, since each costs a node a millisecond. */
const CPU_LOAD = { handler: "spin", payload: { ms: 1 }, connections: 4, pipeline: 8 };
const TAKEOVERS = Number(process.env.BENCH_TAKEOVERS ?? 12);

export async function run({ durationMs, rounds, log }) {
  if (!redisInstalled()) return { pending: "redis-server is not installed (Debian package redis-server)" };
  const redis = await startRedis();
  const hosts = [];
  const start = async (args) => {
    const h = await startHost(["--log-level", "info", ...args]);
    hosts.push(h);
    return h;
  };
  try {
    const single = await start(["--threads", "2"]);
    const one = await start(["--threads", "2", "--redis", redis.url, "--cluster", "one", "--host-id", "solo"]);
    const twoA = await start(["--threads", "1", "--redis", redis.url, "--cluster", "two", "--host-id", "a"]);
    const twoB = await start(["--threads", "1", "--redis", redis.url, "--cluster", "two", "--host-id", "b"]);
    const three = [];
    for (const id of ["x", "y", "z"]) three.push(await start(["--threads", "1", "--redis", redis.url, "--cluster", "three", "--host-id", id]));
    const cpu = {};
    /** Load on `ports` (split evenly), with the CPU the host processes and Redis spent per request. */
    const measure = (name, ports, pids, load = LOAD) => async (ms) => {
      const before = pids.map(cpuMicros);
      const redisBefore = cpuMicros(redis.pid);
      const parts = await Promise.all(ports.map((port, i) => tcpLoad({ port, ...load, connections: share(load.connections, ports.length, i), durationMs: ms })));
      const completed = parts.reduce((a, p) => a + p.completed, 0);
      const hostCpu = pids.map(cpuMicros).reduce((a, v, i) => a + v - before[i], 0);
      const figures = {
        throughput: parts.reduce((a, p) => a + p.throughput, 0),
        p50: Math.max(...parts.map((p) => p.p50)),
        p99: Math.max(...parts.map((p) => p.p99)),
        completed,
        hostUsPerReq: hostCpu / completed,
        redisUsPerReq: (cpuMicros(redis.pid) - redisBefore) / completed,
      };
      if (!cpu[name] || figures.throughput > cpu[name].throughput) cpu[name] = figures;
      return figures;
    };
    const names = {
      single: "echo: 1 host, no Redis, 2 threads",
      one: "echo: 1 host via Redis, 2 threads",
      two: "echo: 2 hosts via Redis, 1 thread each",
      three: "echo: 3 hosts via Redis, 1 thread each",
      cpuSingle: "1 ms CPU: 1 host, no Redis, 2 threads",
      cpuTwo: "1 ms CPU: 2 hosts via Redis, 1 thread each",
      cpuThree: "1 ms CPU: 3 hosts via Redis, 1 thread each",
    };
    const threePorts = three.map((h) => h.port);
    const threePids = three.map((h) => h.pid);
    const best = await bestOfRounds(
      {
        [names.single]: measure(names.single, [single.port], [single.pid]),
        [names.one]: measure(names.one, [one.port], [one.pid]),
        [names.two]: measure(names.two, [twoA.port, twoB.port], [twoA.pid, twoB.pid]),
        [names.three]: measure(names.three, threePorts, threePids),
        [names.cpuSingle]: measure(names.cpuSingle, [single.port], [single.pid], CPU_LOAD),
        [names.cpuTwo]: measure(names.cpuTwo, [twoA.port, twoB.port], [twoA.pid, twoB.pid], CPU_LOAD),
        [names.cpuThree]: measure(names.cpuThree, threePorts, threePids, CPU_LOAD),
      },
      { rounds, durationMs, log },
    );
    for (const h of [single, one, twoA, twoB, ...three]) await h.kill();
    const takeover = await takeovers(redis.url, start, log);
    const base = best[names.single];
    // Each load against the single host without Redis that ran the same handler.
    const baseOf = (name) => (name.startsWith("1 ms CPU") ? best[names.cpuSingle] : base);
    const noRedis = new Set([names.single, names.cpuSingle]);
    const rows = Object.entries(best).map(([name, f]) => [
      name, perSecond(f.throughput), f.p50.toFixed(2), f.p99.toFixed(2), `${ratio(f.throughput, baseOf(name).throughput)}×`,
      Number.isFinite(f.hostUsPerReq) ? Math.round(f.hostUsPerReq) : "-", noRedis.has(name) ? "-" : Math.round(f.redisUsPerReq),
    ]);
    rows.push([`takeover after SIGKILL (${takeover.length} runs)`, "-", `p50 ${percentile(takeover, 0.5)}`, `p99 ${percentile(takeover, 0.99)}`, "-", "-", "-"]);
    const two = best[names.two];
    const p99 = percentile(takeover, 0.99);
    return {
      measures: `echo over TCP, ${LOAD.connections} connections × ${LOAD.pipeline} in flight, and a ~1 ms CPU job at ${CPU_LOAD.connections} × ${CPU_LOAD.pipeline} (split across the hosts' ports), best of ${rounds} × ${durationMs / 1000} s; Redis 7 with AOF everysec on this machine; takeover: SIGKILL of the host running a checkpointing job to the next attempt's claim, --host-timeout-ms 1000; shared machine: read the ratios`,
      columns: ["setup", "req/s", "p50 ms", "p99 ms", "× no Redis", "host CPU µs/req", "Redis CPU µs/req"],
      rows,
      raw: { best, takeoverMs: takeover },
      targets: [
        { target: "2 hosts ≥ 20k echo req/s at 256 in flight", value: `${perSecond(two.throughput)}/s`, met: two.throughput >= 20_000 },
        { target: "2 hosts echo p99 ≤ 50 ms", value: `${two.p99.toFixed(1)} ms`, met: two.p99 <= 50 },
        { target: "takeover ≤ 1.5 s p99 after SIGKILL (defaults)", value: `${p99} ms`, met: p99 <= 1500 },
      ],
      chart: { unit: "× no Redis", bars: Object.entries(best).map(([name, f]) => ({ label: name, value: f.throughput / baseOf(name).throughput, baseline: noRedis.has(name) })) },
    };
  } finally {
    await Promise.all(hosts.map((h) => h.kill()));
    await redis.close();
  }
}

/** Connection `i`'s share when `total` connections are split over `parts` ports (at least 1 each). */
function share(total, parts, i) {
  return Math.max(1, Math.floor(total / parts) + (i < total % parts ? 1 : 0));
}

/**
 * Repeats: a gateway sends a long checkpointing job; once a worker host holds it and has
 * checkpointed, that host is SIGKILLed; the time until Redis shows the request claimed by
 * the other host (attempt 2) is one sample. The killed host is started again each time.
 */
async function takeovers(url, start, log) {
  const watch = new Redis(url);
  const cluster = "takeover";
  const args = (id, threads) => ["--threads", String(threads), "--redis", url, "--cluster", cluster, "--host-id", id];
  const gateway = await start([...args("gw", 0), "--processes", "0"]);
  const workers = { w1: await start(args("w1", 1)), w2: await start(args("w2", 1)) };
  const { Client } = await import("../../dist/index.js");
  const client = new Client({ port: gateway.port });
  const samples = [];
  try {
    for (let i = 0; i < TAKEOVERS; i++) {
      const call = client.call("steps", { steps: 150, ms: 10 }, { timeoutMs: 60_000 });
      const { key, owner } = await poll(async () => {
        for (const key of await watch.keys(`crew:{${cluster}}:r:*`)) {
          const [own, ck, done] = await watch.hmget(key, "own", "ck", "done");
          if (own && ck && !done) return { key, owner: own };
        }
      });
      const killedAt = performance.now();
      await workers[owner].kill();
      await poll(async () => ((await watch.hget(key, "att")) === "2" ? true : undefined), 2);
      const ms = Math.round(performance.now() - killedAt);
      samples.push(ms);
      log(`  takeover ${i + 1}: ${ms} ms`);
      workers[owner] = await start(args(owner, 1));
      const reply = await call;
      if (!reply.ok || reply.result.attempt !== 2) throw new Error(`takeover ${i + 1}: ${JSON.stringify(reply)}`);
    }
  } finally {
    await client.close();
    watch.disconnect();
  }
  return samples;
}

async function poll(check, everyMs = 5) {
  for (;;) {
    const found = await check();
    if (found !== undefined) return found;
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

function percentile(samples, q) {
  const sorted = [...samples].sort((a, b) => a - b);
  return round(sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? NaN, 0);
}
