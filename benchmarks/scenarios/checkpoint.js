// Scenario 5, checkpoint cost: a CPU job done in slices (~200 ms of work) that
// checkpoints every 1, 10 or 100 ms, against the same job never checkpointing. Each
// `await ctx.checkpoint()` is a round trip to the primary, so this is the price of that
// round trip (and of the JSON) at each rate.
//
// Jobs are long and few, and a few percent is easily lost in the noise of a shared
// machine, so the comparison is paired: in each turn every variant runs one job per node,
// back to back (in an order that rotates from turn to turn), and the turn yields one
// ratio per variant, its job time against the no-checkpoint job time of the same turn.
// The figure is the median of those ratios. Job times come from the replies (meta.ms:
// submit to answer in the primary).
import { Client } from "../../dist/protocol/client.js";
import { percentile } from "../../dist/bench/report.js";
import { startServer } from "../lib/servers.js";
import { round } from "../lib/measure.js";
import { HANDLERS } from "../lib/probe.js";
import { unitMs } from "../lib/work-unit.js";

export const id = "checkpoint";
export const title = "Checkpoint cost";
const NODES = 2;
const JOB_MS = 200;
const INTERVALS = [0, 1, 10, 100];
const label = (every) => (every === 0 ? "no checkpoints" : `every ${every} ms`);
const median = (values) => percentile([...values].sort((a, b) => a - b), 50);

/** One job per node, together; resolves with the mean job time and the checkpoints taken. */
async function batch(client, units, every) {
  const replies = await Promise.all(Array.from({ length: NODES }, () => client.call("slices", { units, every })));
  for (const r of replies) if (!r.ok) throw new Error(`slices every ${every}: ${r.error.code} ${r.error.message}`);
  return {
    ms: replies.reduce((sum, r) => sum + r.meta.ms, 0) / NODES,
    checkpoints: replies.reduce((sum, r) => sum + r.result.checkpoints, 0) / NODES,
  };
}

export async function run({ durationMs, rounds, log }) {
  const units = Math.round(JOB_MS / unitMs());
  // As much time as the other scenarios give a variant: rounds × duration.
  const turns = Math.max(5, Math.round((rounds * durationMs) / JOB_MS / 2));
  const server = await startServer("crew.js", ["--threads", String(NODES), "--handlers", HANDLERS]);
  const client = new Client({ port: server.port });
  try {
    for (const every of INTERVALS) await batch(client, units, every); // warm-up: JIT, threads
    const times = Object.fromEntries(INTERVALS.map((every) => [every, []]));
    const ratios = Object.fromEntries(INTERVALS.map((every) => [every, []]));
    const checkpoints = Object.fromEntries(INTERVALS.map((every) => [every, []]));
    for (let turn = 0; turn < turns; turn++) {
      const order = INTERVALS.map((_, i) => INTERVALS[(i + turn) % INTERVALS.length]);
      const got = {};
      for (const every of order) got[every] = await batch(client, units, every);
      for (const every of INTERVALS) {
        times[every].push(got[every].ms);
        checkpoints[every].push(got[every].checkpoints);
        ratios[every].push(got[0].ms / got[every].ms);
      }
    }
    const figures = {};
    for (const every of INTERVALS) {
      const ms = median(times[every]);
      figures[every] = { medianJobMs: round(ms, 1), throughput: (NODES * 1000) / ms, vsNone: round(median(ratios[every]), 3), checkpointsPerJob: round(median(checkpoints[every]), 1) };
      log(`  ${label(every)}: median job ${figures[every].medianJobMs} ms, ${figures[every].vsNone}× none (median of ${turns} paired turns)`);
    }
    const rows = INTERVALS.map((every) => {
      const f = figures[every];
      return [label(every), f.throughput.toFixed(2), String(f.medianJobMs), String(f.checkpointsPerJob), `${f.vsNone}×`, `${round((1 - f.vsNone) * 100, 1)}%`];
    });
    const at10 = figures[10].vsNone;
    return {
      measures: `${NODES} thread nodes, jobs of ${units} slices ≈ ${JOB_MS} ms of CPU, ${NODES} at a time, ${turns} paired turns`,
      columns: ["checkpoints", "jobs/s", "median job ms", "checkpoints/job", "× none (paired)", "cost"],
      rows,
      raw: { units, jobMs: JOB_MS, turns, figures, times, ratios },
      targets: [{ target: "a checkpoint every 10 ms costs ≤ 5% throughput", value: `${round((1 - at10) * 100, 1)}%`, met: at10 >= 0.95 }],
      chart: { unit: "× no checkpoints", bars: INTERVALS.map((every) => ({ label: label(every), value: figures[every].vsNone, baseline: every === 0 })) },
    };
  } finally {
    await client.close();
    await server.close();
  }
}
