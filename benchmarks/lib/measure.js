// Shared measuring helpers: one TCP load run through crew's own load generator (the one
// `crew bench` uses, so every TCP figure comes from the same client code), rounds that
// alternate between variants, and calibrating a CPU handler against this machine.
import { startLoad } from "../../dist/bench/load.js";
import { latencyFigures } from "../../dist/bench/report.js";
import fib from "../../workers/fib.js";

/** One load run; the figures the tables show. Errors make the run fail loudly. */
export async function tcpLoad({ port, handler, payload, connections, pipeline, durationMs, requests }) {
  const run = startLoad({ host: "127.0.0.1", port, handler, payload, connections, pipeline, durationMs, requests });
  const r = await run.done;
  const failed = Object.values(r.errors).reduce((a, b) => a + b, 0);
  if (failed > 0) throw new Error(`${handler} on port ${port}: ${failed} failed requests ${JSON.stringify(r.errors)}`);
  const latency = latencyFigures(r.histogram);
  return { throughput: (r.completed * 1000) / r.elapsedMs, p50: latency.p50, p99: latency.p99, completed: r.completed, elapsedMs: r.elapsedMs };
}

/**
 * Runs every variant once per round, in turn (A B C A B C …), after a short warm-up of
 * each (JIT, connections, thread start), and keeps each variant's best round by
 * throughput. The machine is shared and noisy; noise only ever slows a run, so the best
 * of a few alternating rounds is the fairest figure for each.
 * `variants`: name → (durationMs) => Promise<{ throughput, … }>.
 */
export async function bestOfRounds(variants, { rounds, durationMs, warmupMs = 500, log }) {
  for (const measure of Object.values(variants)) await measure(warmupMs);
  const best = {};
  for (let round = 1; round <= rounds; round++) {
    for (const [name, measure] of Object.entries(variants)) {
      const figures = await measure(durationMs);
      log(`  round ${round} ${name}: ${perSecond(figures.throughput)}/s`);
      if (!best[name] || figures.throughput > best[name].throughput) best[name] = figures;
    }
  }
  return best;
}

/** Milliseconds one fib(n) takes here, best of a few runs. */
export function timeFib(n, runs = 15) {
  fib(n);
  let best = Infinity;
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    fib(n);
    best = Math.min(best, performance.now() - t);
  }
  return best;
}

/** The n whose fib(n) takes closest to `ms` on this machine. */
export function calibrateFib(ms) {
  let pick = { n: 20, ms: timeFib(20) };
  for (let n = 21; n <= 32; n++) {
    const t = timeFib(n, 5);
    if (Math.abs(t - ms) < Math.abs(pick.ms - ms)) pick = { n, ms: t };
    if (t > ms * 2) break;
  }
  return pick;
}

export const round = (v, digits = 2) => Math.round(v * 10 ** digits) / 10 ** digits;
export const ratio = (a, b) => (b > 0 ? round(a / b, 2) : null);
export const perSecond = (v) => Math.round(v).toLocaleString("en-US");
