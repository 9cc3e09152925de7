// Chaos soak for several hosts on one Redis (issue 12's "lost (0) and duplicated (0)
// replies under a chaos run"): a redis-server of its own (AOF everysec), 2 gateway hosts
// and 3 worker hosts; resubmitting clients (Client({ resubmit: true, hosts: [...] })) send
// keyed checkpointing jobs and echoes through the gateways while, every few seconds, a
// random worker host is either SIGKILLed (and started again) or SIGSTOPped (and
// SIGCONTed a bit more than --host-timeout-ms later, so its work is taken over and it
// thaws fenced). At the end every call must have been answered exactly once, correctly:
//   - replies are counted per call id on the wire, by a transparent proxy between each
//     client and each gateway (the Client itself drops a second reply silently);
//   - the job handler (test/fixtures/hosts/steps.js) appends each completed final step to
//     a side-channel file: every job finished at least once, never twice in one attempt,
//     and its reply comes from an attempt that finished.
//   npm run soak:hosts -- [--events 100] [--every-ms 3000] [--host-timeout-ms 1000] [--clients 4] [--pipeline 4] [--jobs-in-flight 3]
// Not part of the unit suite: it runs for events × every-ms and more.
import { randomUUID } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { Redis } from "ioredis";
import { redisInstalled, startHost, startRedis } from "./lib/hosts.js";
import { Client } from "../dist/index.js";

const { values } = parseArgs({
  options: {
    events: { type: "string", default: "100" },
    "every-ms": { type: "string", default: "3000" },
    "host-timeout-ms": { type: "string", default: "1000" },
    clients: { type: "string", default: "4" },
    pipeline: { type: "string", default: "4" },
    "jobs-in-flight": { type: "string", default: "3" },
  },
});
const EVENTS = Number(values.events);
const EVERY_MS = Number(values["every-ms"]);
const HOST_TIMEOUT_MS = Number(values["host-timeout-ms"]);
const JOB = { steps: 30, ms: 50 }; // ~1.5 s of checkpointed steps
const CLUSTER = "chaos";

if (!redisInstalled()) {
  console.log("soak:hosts skipped: redis-server is not installed (Debian package redis-server)");
  process.exit(0);
}

const began = performance.now();
const dir = mkdtempSync(join(tmpdir(), "crew-soak-hosts-"));
const stepsLog = join(dir, "steps.ndjson");
writeFileSync(stepsLog, "");
process.env.CREW_STEPS_LOG = stepsLog; // inherited by every host this script starts
const redis = await startRedis();
const watch = new Redis(redis.url);
const hostArgs = (id, threads) => ["--log-level", "info", "--redis", redis.url, "--cluster", CLUSTER, "--host-id", id, "--threads", String(threads), "--processes", "0", "--host-timeout-ms", String(HOST_TIMEOUT_MS)];
// Interrupted (Ctrl-C, kill): take the hosts and Redis down too, frozen ones included.
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.once(signal, async () => {
    for (const h of [...gateways, ...Object.values(workers)].filter(Boolean)) process.kill(h.pid, "SIGKILL");
    await redis.close();
    process.exit(130);
  });
}
const gateways = [];
gateways.push(await startHost(hostArgs("gw1", 0)), await startHost(hostArgs("gw2", 0)));
const workers = { w1: null, w2: null, w3: null };
for (const id of Object.keys(workers)) workers[id] = await startHost(hostArgs(id, 2));

/** Reply lines carried back per call (its idempotency key), and lines no call of ours asked for. */
const replies = new Map();
const strays = [];
const proxies = [];

/** Splits a stream into lines and gives each, parsed, to `onFrame`. */
function frames(socket, onFrame) {
  let buf = "";
  socket.on("data", (chunk) => {
    buf += chunk.toString("utf8");
    for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
      onFrame(JSON.parse(buf.slice(0, i)));
      buf = buf.slice(i + 1);
    }
  });
}

/**
 * A transparent TCP proxy to `port` for one client: it learns each call's id from the run
 * frames going up (`keys`: id -> idempotency key, shared by that client's proxies) and counts
 * the reply lines coming back per key.
 */
async function countingProxy(keys, port) {
  const server = createServer((down) => {
    const up = connect(port, "127.0.0.1");
    down.pipe(up);
    up.pipe(down);
    frames(down, (f) => (f.op ?? "run") === "run" && keys.set(f.id, f.idempotencyKey));
    frames(up, (f) => {
      const key = keys.get(f.id);
      if (key === undefined) strays.push(f);
      else replies.set(key, (replies.get(key) ?? 0) + 1);
    });
    const end = () => (down.destroy(), up.destroy());
    up.on("close", end).on("error", end);
    down.on("close", end).on("error", end);
  }).listen(0, "127.0.0.1");
  await new Promise((resolve) => server.once("listening", resolve));
  proxies.push(server);
  return `127.0.0.1:${server.address().port}`;
}

// Each client goes through its own proxies, to both gateways (in turn as first choice).
const clients = [];
for (let c = 0; c < Number(values.clients); c++) {
  const order = c % 2 ? [gateways[1], gateways[0]] : gateways;
  const keys = new Map();
  const hosts = [];
  for (const gw of order) hosts.push(await countingProxy(keys, gw.port));
  clients.push({ c, client: new Client({ resubmit: true, hosts }) });
}

const calls = []; // { c, id?, kind, payload, key, reply|error }
let stopping = false;

// A few slots send only jobs, fewer than the surviving workers' nodes, so a host always has
// room to take over what a dead one held (takeover times then measure liveness, not queueing).
const PIPELINE = Number(values.pipeline);
const JOBS_IN_FLIGHT = Number(values["jobs-in-flight"]);

async function slot(client, c, s) {
  const job = c * PIPELINE + s < JOBS_IN_FLIGHT;
  for (let i = 0; !stopping; i++) {
    const key = randomUUID();
    const payload = job ? { ...JOB, tag: key } : { c, s, i };
    const call = { c, kind: job ? "job" : "echo", payload, key };
    calls.push(call);
    try {
      call.reply = await client.call(job ? "steps" : "echo", payload, { idempotencyKey: key, timeoutMs: 120_000 });
    } catch (err) {
      call.error = `${err.code ?? "THROWN"}: ${err.message}`;
    }
  }
}
const load = clients.flatMap(({ client, c }) => Array.from({ length: PIPELINE }, (_, s) => slot(client, c, s)));

/** Requests `host` holds now (claimed, not answered): their Redis keys, from the queues' pending lists. */
async function heldBy(host) {
  const keys = [];
  for (const band of ["hi", "mid", "lo"]) {
    const queue = `crew:{${CLUSTER}}:q:${band}`;
    if (!(await watch.exists(queue))) continue;
    for (const [entry] of await watch.xpending(queue, "hosts", "-", "+", 10_000, host)) {
      const [[, fields] = []] = await watch.xrange(queue, entry, entry);
      const key = fields && `crew:{${CLUSTER}}:r:${fields[fields.indexOf("r") + 1]}`;
      if (key && (await watch.hmget(key, "own", "done")).join() === `${host},`) keys.push(key);
    }
  }
  return keys;
}

/** Resolves with the ms until each of `keys` is claimed by another host (undefined: answered or gone first). */
function takeoverTimes(keys, host, from) {
  return Promise.all(keys.map(async (key) => {
    for (;;) {
      const [own, done] = await watch.hmget(key, "own", "done");
      if (own !== null && own !== host) return performance.now() - from;
      if (own === null || done) return undefined;
      if (performance.now() - from > 60_000) return Infinity; // never taken over: counted, and fails the run
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }));
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const events = { kill: 0, freeze: 0 };
const takeovers = { kill: [], freeze: [] };
for (let e = 0; e < EVENTS; e++) {
  await sleep(EVERY_MS);
  const ids = Object.keys(workers);
  const victim = ids[Math.floor(Math.random() * ids.length)];
  const action = Math.random() < 0.5 ? "kill" : "freeze";
  const held = await heldBy(victim);
  const at = performance.now();
  let times;
  if (action === "kill") {
    await workers[victim].kill();
    times = takeoverTimes(held, victim, at);
    workers[victim] = await startHost(hostArgs(victim, 2));
  } else {
    process.kill(workers[victim].pid, "SIGSTOP");
    times = takeoverTimes(held, victim, at);
    await sleep(HOST_TIMEOUT_MS + 500);
    process.kill(workers[victim].pid, "SIGCONT");
  }
  const seen = (await times).filter((ms) => ms !== undefined);
  takeovers[action].push(...seen);
  events[action]++;
  console.log(`event ${e + 1}/${EVENTS}: ${action} ${victim}, held ${held.length}, taken over in ${seen.map((ms) => Math.round(ms)).join(", ") || "-"} ms; ${calls.length} calls so far`);
}

stopping = true;
await Promise.all(load);
// Late duplicates would come right after the last answers: give them a moment to arrive.
await sleep(3 * HOST_TIMEOUT_MS);

// Check every call: one reply on the wire, the right answer, a final step behind each job.
const finished = new Map(); // tag -> [attempt]
for (const line of readFileSync(stepsLog, "utf8").split("\n").filter(Boolean)) {
  const { tag, attempt } = JSON.parse(line);
  finished.set(tag, [...(finished.get(tag) ?? []), attempt]);
}
const stats = { calls: calls.length, echoes: 0, jobs: 0, ok: 0, lost: 0, duplicated: 0, wrong: 0, jobsFinishedTwice: 0, attemptFinishedTwice: 0, resumed: 0 };
const problems = [];
for (const call of calls) {
  stats[call.kind === "job" ? "jobs" : "echoes"]++;
  if (call.error || !call.reply) {
    stats.lost++;
    problems.push(`lost ${call.kind} ${call.key}: ${call.error}`);
    continue;
  }
  const { reply } = call;
  const count = replies.get(call.key) ?? 0;
  if (count !== 1) {
    stats[count > 1 ? "duplicated" : "lost"]++;
    problems.push(`${count} replies on the wire for ${call.kind} ${call.key}`);
  }
  const attempts = finished.get(call.key) ?? [];
  const right = !reply.ok
    ? false
    : call.kind === "echo"
      ? JSON.stringify(reply.result) === JSON.stringify(call.payload)
      : reply.result.done === JOB.steps && attempts.includes(reply.result.attempt);
  if (!right) {
    stats.wrong++;
    problems.push(`wrong ${call.kind} ${call.key}: ${JSON.stringify(reply)} (finished in attempts ${attempts})`);
  } else stats.ok++;
  if (call.kind === "job") {
    if (attempts.length > 1) stats.jobsFinishedTwice++;
    if (new Set(attempts).size < attempts.length) {
      stats.attemptFinishedTwice++;
      problems.push(`job ${call.key} finished twice in one attempt: ${attempts}`);
    }
    if (reply.ok && reply.result.resumedAt > 0) stats.resumed++;
  }
}
// Every reply line the proxies carried belongs to a call: none for an id nobody sent.
for (const f of strays.slice(0, 5)) problems.push(`reply for no call: ${JSON.stringify(f)}`);
stats.strays = strays.length;

const pct = (xs, q) => {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  return s.length ? Math.round(s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]) : "-";
};
const summary = (xs) => ({ n: xs.length, p50: pct(xs, 0.5), p99: pct(xs, 0.99), max: pct(xs, 1), never: xs.filter((x) => x === Infinity).length });
const never = [...takeovers.kill, ...takeovers.freeze].filter((x) => x === Infinity).length;
if (never) problems.push(`${never} held requests never taken over within 60 s`);

await Promise.all(clients.map(({ client }) => client.close()));
for (const p of proxies) p.close();
for (const h of [...gateways, ...Object.values(workers)]) {
  try {
    process.kill(h.pid, "SIGCONT");
  } catch {}
  await h.kill();
}
watch.disconnect();
await redis.close();
rmSync(dir, { recursive: true, force: true });

console.log(JSON.stringify({ events, everyMs: EVERY_MS, hostTimeoutMs: HOST_TIMEOUT_MS, ...stats, takeoverMs: { kill: summary(takeovers.kill), freeze: summary(takeovers.freeze) }, seconds: Math.round((performance.now() - began) / 1000) }));
for (const p of problems.slice(0, 20)) console.log(`  ${p}`);
const good = problems.length === 0 && stats.ok === stats.calls;
console.log(good ? "soak:hosts: every call answered exactly once, correctly" : `soak:hosts: FAILED (${problems.length} problems)`);
process.exit(good ? 0 : 1);
