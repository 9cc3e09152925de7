// Scenario 4, recovery. (a) Time from a node's death to its request's next attempt
// starting: the `hold` handler's attempt 1 checkpoints, the primary kills its node on
// that signal and notes the time; attempt 2 reports when it started. With a spare node
// the retry runs at once elsewhere; without one it waits for the replacement to spawn,
// so the spawn time (kill → node up) is measured in the same runs. (b) Work redone per
// crash against the checkpoint interval: a `slices` job is killed at set points; the work
// lost is the time from its last stored checkpoint (or its start) to the kill.
import { percentile } from "../../dist/bench/report.js";
import { round } from "../lib/measure.js";
import { probeCluster } from "../lib/probe.js";
import { unitMs } from "../lib/work-unit.js";

export const id = "recovery";
export const title = "Recovery: death to next attempt, and work redone";

const SETUPS = [
  { name: "thread, spare node", threads: 2, samples: 30, spare: true },
  { name: "thread, no spare", threads: 1, samples: 12, spare: false },
  { name: "process, spare node", processes: 2, samples: 20, spare: true },
  { name: "process, no spare", processes: 1, samples: 8, spare: false },
];
const JOB_MS = 200;
const INTERVALS = [0, 1, 10, 100];
const KILL_POINTS_MS = [25, 45, 65, 85, 105, 125, 145, 165];

const stats = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  return { p50: round(percentile(sorted, 50), 2), p99: round(percentile(sorted, 99), 2), mean: round(sorted.reduce((a, b) => a + b, 0) / sorted.length, 2) };
};

async function deathToRetry(setup) {
  const probe = await probeCluster(setup);
  const recovery = [];
  const spawn = [];
  try {
    let killedAt = 0;
    probe.hooks.checkpointStored = (job) => {
      if (job.handler === "hold" && job.attempts === 1) setImmediate(() => (killedAt = probe.kill(job.lastNode)));
    };
    for (let i = 0; i < setup.samples; i++) {
      await probe.warm();
      const up = probe.nextRestart();
      const { startedAt } = await probe.cluster.run("hold");
      recovery.push(startedAt - killedAt);
      spawn.push((await up) - killedAt);
    }
  } finally {
    await probe.close();
  }
  return { recovery: stats(recovery), spawn: stats(spawn), overSpawn: stats(recovery.map((r, i) => r - spawn[i])) };
}

async function workRedone(units) {
  const probe = await probeCluster({ threads: 2 });
  const out = {};
  try {
    for (const every of INTERVALS) {
      const redone = [];
      for (const killAfter of KILL_POINTS_MS) {
        await probe.warm();
        let startedAt = 0;
        let lastCheckpoint = 0;
        let killedAt = 0;
        probe.hooks.attemptStarted = (job) => {
          if (job.handler !== "slices" || job.attempts !== 1) return;
          startedAt = performance.timeOrigin + performance.now();
          setTimeout(() => (killedAt = probe.kill(job.lastNode)), killAfter);
        };
        probe.hooks.checkpointStored = (job) => {
          if (job.attempts === 1 && killedAt === 0) lastCheckpoint = performance.timeOrigin + performance.now();
        };
        const up = probe.nextRestart();
        await probe.cluster.run("slices", { units, every });
        await up;
        redone.push(killedAt - Math.max(startedAt, lastCheckpoint));
      }
      out[every] = stats(redone);
    }
  } finally {
    await probe.close();
  }
  return out;
}

export async function run({ log }) {
  const rows = [];
  const raw = {};
  const targets = [];
  const bars = [];
  for (const setup of SETUPS) {
    const r = await deathToRetry(setup);
    raw[setup.name] = r;
    log(`  ${setup.name}: recovery p50 ${r.recovery.p50} ms p99 ${r.recovery.p99} ms; spawn p50 ${r.spawn.p50} ms`);
    rows.push([`death → next attempt, ${setup.name}`, String(r.recovery.p50), String(r.recovery.p99), setup.spare ? "—" : `spawn p50 ${r.spawn.p50} ms, p99 ${r.spawn.p99} ms`]);
    bars.push({ label: `${setup.name}`, value: r.recovery.p50, text: `${r.recovery.p50} ms` });
    targets.push(
      setup.spare
        ? { target: `recovery p50 ≤ 5 ms with a spare node (${setup.name.split(",")[0]})`, value: `${r.recovery.p50} ms`, met: r.recovery.p50 <= 5 }
        : { target: `recovery p50 ≤ spawn + 5 ms without one (${setup.name.split(",")[0]})`, value: `spawn + ${r.overSpawn.p50} ms`, met: r.overSpawn.p50 <= 5 },
    );
  }
  const unit = unitMs();
  const units = Math.round(JOB_MS / unit);
  const redone = await workRedone(units);
  raw.workRedone = { jobMs: JOB_MS, killPointsMs: KILL_POINTS_MS, byIntervalMs: redone };
  for (const every of INTERVALS) {
    const r = redone[every];
    const label = every === 0 ? "no checkpoints" : `checkpoint every ${every} ms`;
    log(`  work redone, ${label}: mean ${r.mean} ms`);
    rows.push([`work redone per crash, ${label}`, String(r.p50), String(r.p99), `mean ${r.mean} ms`]);
  }
  return {
    measures: `kills at checkpoint time (a) and ${KILL_POINTS_MS.length} set points from ${KILL_POINTS_MS[0]} to ${KILL_POINTS_MS.at(-1)} ms into a ${JOB_MS} ms job (b); in-process cluster`,
    columns: ["measure", "p50 ms", "p99 ms", "note"],
    rows,
    raw,
    targets,
    chart: { unit: "ms, recovery p50", bars },
  };
}
