// Scenario 6, the journal and idempotency keys, side by side in one run:
//   1. TCP echo: plain requests to a cluster without a journal, against keyed requests
//      (Client resubmit: a random idempotency key per call) to a cluster with --journal;
//   2. a ~200 ms job checkpointing 1 KB every 10 ms, keyed, with and without the journal
//      (paired turns, as in the checkpoint scenario);
//   3. a restart on a journal holding 10,000 open requests: the time to read them and
//      to queue them all again (the primary logs both, before its nodes take work).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { Client } from "../../dist/protocol/client.js";
import { createCluster } from "../../dist/index.js";
import { startLoad } from "../../dist/bench/load.js";
import { latencyFigures, percentile } from "../../dist/bench/report.js";
import { JournalStore } from "../../dist/store/journal.js";
import { fingerprintOf } from "../../dist/store/keyed.js";
import { startServer } from "../lib/servers.js";
import { bestOfRounds, perSecond, ratio, round } from "../lib/measure.js";
import { HANDLERS } from "../lib/probe.js";
import { unitMs } from "../lib/work-unit.js";

export const id = "journal";
export const title = "Journal and idempotency keys";
const THREADS = 2;
const LOAD = { handler: "echo", payload: { hello: "world" }, connections: 8, pipeline: 32 };
const JOB_MS = 200;
const OPEN_REQUESTS = 10_000;
const median = (values) => percentile([...values].sort((a, b) => a - b), 50);

async function echoLoad(port, resubmit, durationMs) {
  const r = await startLoad({ host: "127.0.0.1", port, ...LOAD, durationMs, resubmit }).done;
  const failed = Object.values(r.errors).reduce((a, b) => a + b, 0);
  if (failed > 0) throw new Error(`echo (resubmit ${resubmit}): ${failed} failed ${JSON.stringify(r.errors)}`);
  const latency = latencyFigures(r.histogram);
  return { throughput: (r.completed * 1000) / r.elapsedMs, p50: latency.p50, p99: latency.p99 };
}

/** One keyed checkpointing job per node, together; the mean job time (meta.ms). */
async function jobs(client, units) {
  const replies = await Promise.all(
    Array.from({ length: THREADS }, () => client.call("slices", { units, every: 10, pad: 1000 }, { idempotencyKey: crypto.randomUUID() })),
  );
  for (const r of replies) if (!r.ok) throw new Error(`slices: ${r.error.code} ${r.error.message}`);
  return replies.reduce((sum, r) => sum + r.meta.ms, 0) / THREADS;
}

/** Writes OPEN_REQUESTS open keyed requests with a 1 KB checkpoint each, through the journal's own code. */
async function fillJournal(file) {
  const store = await JournalStore.create(file, { maxKeys: OPEN_REQUESTS * 2, maxBytes: 2 ** 30, ttlMs: 600_000, sync: "normal" }, pino({ level: "silent" }));
  await store.open();
  const payloadJson = JSON.stringify({ units: 1, every: 0 });
  let last;
  for (let i = 0; i < OPEN_REQUESTS; i++) {
    const key = `open-${i}`;
    store.admit({ idempotencyKey: key, requestId: "", handler: "slices", payloadJson, fingerprint: fingerprintOf("slices", payloadJson), priority: 0, timeoutMs: 600_000, deadline: Date.now() + 600_000 });
    store.attemptStarted(key, 1);
    last = store.checkpoint(key, 1, JSON.stringify({ done: 0, filler: "x".repeat(1000) }));
  }
  await last;
  await store.close();
}

/** Starts a cluster on the filled journal; the primary's own figures for reading and queuing. */
async function restart(file) {
  let line = null;
  const logger = pino({ level: "info" }, { write: (text) => { const l = JSON.parse(text); if (l.msg === "journaled requests queued again") line = l; } });
  const t = performance.now();
  const cluster = await createCluster({ handlers: HANDLERS, threads: 1, processes: 0, journal: file, logger, drainTimeoutMs: 0, maxQueue: OPEN_REQUESTS * 2 });
  const startMs = performance.now() - t;
  await cluster.close();
  if (!line) throw new Error("the restarted primary did not log its requeue");
  return { requeued: line.requeued, readMs: line.readMs, queueMs: line.queueMs, startMs: round(startMs, 0) };
}

export async function run({ durationMs, rounds, log }) {
  const dir = mkdtempSync(join(tmpdir(), "crew-bench-journal-"));
  const servers = {};
  try {
    servers.plain = await startServer("crew.js", ["--threads", String(THREADS), "--handlers", HANDLERS]);
    servers.journal = await startServer("crew.js", ["--threads", String(THREADS), "--handlers", HANDLERS, "--journal", join(dir, "echo.db")]);
    const names = { plain: "plain echo, no journal", keyed: "keyed echo, --journal (resubmit client)" };
    const best = await bestOfRounds(
      { [names.plain]: (ms) => echoLoad(servers.plain.port, false, ms), [names.keyed]: (ms) => echoLoad(servers.journal.port, true, ms) },
      { rounds, durationMs, log },
    );
    const plain = best[names.plain];
    const keyed = best[names.keyed];
    const echoRatio = ratio(keyed.throughput, plain.throughput);
    const addedP50 = round(keyed.p50 - plain.p50, 2);

    const units = Math.round(JOB_MS / unitMs());
    const turns = Math.max(5, Math.round((rounds * durationMs) / JOB_MS / 2));
    const clients = { memory: new Client({ port: servers.plain.port }), journal: new Client({ port: servers.journal.port }) };
    const times = { memory: [], journal: [] };
    const ratios = [];
    try {
      for (const c of Object.values(clients)) await jobs(c, units); // warm-up
      for (let turn = 0; turn < turns; turn++) {
        const order = turn % 2 === 0 ? ["memory", "journal"] : ["journal", "memory"];
        const got = {};
        for (const which of order) got[which] = await jobs(clients[which], units);
        times.memory.push(got.memory);
        times.journal.push(got.journal);
        ratios.push(got.memory / got.journal);
      }
    } finally {
      await Promise.all(Object.values(clients).map((c) => c.close()));
    }
    const ckptRatio = round(median(ratios), 3);
    const ckptCost = round((1 - ckptRatio) * 100, 1);
    log(`  1 KB checkpoint every 10 ms: median job ${round(median(times.memory), 1)} ms without the journal, ${round(median(times.journal), 1)} ms with (${ckptRatio}×)`);

    const file = join(dir, "open.db");
    await fillJournal(file);
    const re = await restart(file);
    log(`  restart with ${re.requeued} open requests: read ${re.readMs} ms, queued ${re.queueMs} ms (createCluster ${re.startMs} ms with node spawn)`);

    const rows = [
      [names.plain, perSecond(plain.throughput), plain.p50.toFixed(2), plain.p99.toFixed(2), "1×"],
      [names.keyed, perSecond(keyed.throughput), keyed.p50.toFixed(2), keyed.p99.toFixed(2), `${echoRatio}×`],
      [`job, 1 KB checkpoint / 10 ms, no journal`, (1000 / median(times.memory)).toFixed(2), "-", "-", "1×"],
      [`job, 1 KB checkpoint / 10 ms, --journal`, (1000 / median(times.journal)).toFixed(2), "-", "-", `${ckptRatio}×`],
      [`restart: ${re.requeued} open requests read + queued (ms)`, `${re.readMs + re.queueMs}`, "-", "-", "-"],
    ];
    return {
      measures: `echo ${LOAD.connections} connections × ${LOAD.pipeline} in flight, best of ${rounds} × ${durationMs / 1000} s; jobs ≈ ${JOB_MS} ms, ${THREADS} at a time, ${turns} paired turns; restart on ${OPEN_REQUESTS} open requests`,
      columns: ["variant", "req/s (jobs/s; restart ms)", "p50 ms", "p99 ms", "× without"],
      rows,
      raw: { plain, keyed, checkpoint: { times, ratios }, restart: re },
      targets: [
        { target: "keyed, journaled echo ≥ 0.8× plain echo", value: `${echoRatio}×`, met: echoRatio >= 0.8 },
        { target: "keyed, journaled echo p50 ≤ plain p50 + 2 ms", value: `+${addedP50} ms`, met: addedP50 <= 2 },
        { target: "a 1 KB checkpoint every 10 ms costs ≤ 5% more with the journal", value: `${ckptCost}%`, met: ckptCost <= 5 },
        { target: `${OPEN_REQUESTS} open requests queued again within 1 s of start (before node spawn)`, value: `${re.readMs + re.queueMs} ms`, met: re.readMs + re.queueMs <= 1000 },
      ],
      chart: { unit: "× without the journal", bars: [
        { label: names.plain, value: 1, baseline: true },
        { label: names.keyed, value: keyed.throughput / plain.throughput, baseline: false },
        { label: "checkpointing job, --journal", value: ckptRatio, baseline: false },
      ] },
    };
  } finally {
    await Promise.all(Object.values(servers).map((s) => s.close()));
    rmSync(dir, { recursive: true, force: true });
  }
}
