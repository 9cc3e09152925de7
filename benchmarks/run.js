// `npm run bench`: every scenario, crew and its baselines side by side in the same run,
// ratios printed as it goes; results to benchmarks/results/latest.{json,md,svg}.
//   node benchmarks/run.js [--only dispatch,http] [--seconds 1.5] [--rounds 4]
import { availableParallelism, cpus, totalmem } from "node:os";
import { parseArgs } from "node:util";
import { writeResults } from "./lib/output.js";
import * as dispatch from "./scenarios/dispatch.js";
import * as cpuScaling from "./scenarios/cpu-scaling.js";
import * as http from "./scenarios/http.js";
import * as recovery from "./scenarios/recovery.js";
import * as checkpoint from "./scenarios/checkpoint.js";
import * as reload from "./scenarios/reload.js";
import * as hedging from "./scenarios/hedging.js";
import * as journal from "./scenarios/journal.js";
import * as hosts from "./scenarios/hosts.js";

const SCENARIOS = [dispatch, cpuScaling, http, recovery, checkpoint, reload, hedging, journal, hosts];

const { values } = parseArgs({
  options: {
    only: { type: "string" },
    seconds: { type: "string", default: process.env.BENCH_SECONDS ?? "1.5" },
    rounds: { type: "string", default: process.env.BENCH_ROUNDS ?? "4" },
  },
});
const seconds = Number(values.seconds);
const rounds = Number(values.rounds);
const only = values.only?.split(",");
const log = (line) => console.log(line);

const started = performance.now();
const run = {
  date: new Date().toISOString().slice(0, 16).replace("T", " ") + " UTC",
  command: `npm run bench${process.argv.length > 2 ? " -- " + process.argv.slice(2).join(" ") : ""}`,
  machine: {
    cpu: cpus()[0]?.model.trim() ?? "unknown",
    cores: availableParallelism(),
    memoryGb: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
  },
  seconds,
  rounds,
  scenarios: [],
};

for (const scenario of SCENARIOS) {
  if (only && !only.includes(scenario.id)) continue;
  log(`\n== ${scenario.title}`);
  const t = performance.now();
  let result;
  try {
    result = await scenario.run({ durationMs: seconds * 1000, rounds, log });
  } catch (err) {
    console.error(err);
    result = { error: err instanceof Error ? err.message : String(err) };
  }
  run.scenarios.push({ id: scenario.id, title: scenario.title, seconds: Math.round((performance.now() - t) / 100) / 10, ...result });
  if (result.pending) log(`  PENDING: ${result.pending}`);
  for (const row of result.rows ?? []) log(`  ${row.join("  |  ")}`);
  for (const target of result.targets ?? []) log(`  target: ${target.target}: ${target.value} ${target.met ? "(met)" : "(MISSED)"}`);
}

run.totalSeconds = Math.round((performance.now() - started) / 1000);
for (const file of writeResults(run)) log(`wrote ${file}`);
log(`suite took ${run.totalSeconds} s`);
// Exit even if a server or socket of a failed scenario still holds the event loop.
process.exit(run.scenarios.some((s) => s.error) ? 1 : 0);
