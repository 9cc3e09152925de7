/**
 * Turns a load run's raw figures into the report `crew bench` prints and writes with
 * --json. Field names are a contract (docs/bench.md): `throughput` in requests per
 * second, `latency.{p50,p90,p99,p999,max,mean}` in milliseconds.
 */
import type { Histogram } from "hdr-histogram-js";
import type { LoadResult } from "./load.js";

export interface LatencyFigures {
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  mean: number;
}

export interface RecoveryFigures {
  samples: number;
  p50: number;
  p99: number;
  max: number;
}

export interface ChaosFigures {
  killEveryMs: number;
  /** Kills the admin endpoint carried out. */
  kills: number;
  /** Ticks where no node was up to kill, or it died before the kill landed (404). */
  skipped: number;
  /** Kill calls that failed (admin endpoint refused or unreachable), with the last reason. */
  killErrors: number;
  lastKillError: string | null;
  /** Requests that got no result: every error but E_HANDLER (the handler's own answer). Must be 0. */
  lost: number;
  /** Time from a kill to the reply of a request that kill forced to retry, in ms (null: no retried request). */
  recovery: RecoveryFigures | null;
}

export interface BenchConfig {
  host: string;
  port: number;
  handler: string;
  payload: unknown;
  connections: number;
  pipeline: number;
  durationMs: number | null;
  requests: number | null;
}

export interface BenchReport {
  config: BenchConfig;
  startedAt: string;
  elapsedMs: number;
  /** Requests answered ok. */
  completed: number;
  /** Requests answered with an error (or with no reply), by code. */
  failed: number;
  /** Completed requests per second. */
  throughput: number;
  latency: LatencyFigures;
  errors: Record<string, number>;
  retries: { requests: number; extraAttempts: number };
  chaos?: ChaosFigures;
}

/** Milliseconds, from microsecond histogram values, kept to the microsecond. */
const ms = (us: number): number => Math.round(us) / 1000;

export function latencyFigures(histogram: Histogram): LatencyFigures {
  if (histogram.totalCount === 0) return { p50: 0, p90: 0, p99: 0, p999: 0, max: 0, mean: 0 };
  // A percentile reads the top of its HDR bucket, which can sit a hair above the largest
  // value recorded: cap it there, so p99.9 never reads higher than max.
  const max = histogram.maxValue;
  const at = (p: number) => ms(Math.min(histogram.getValueAtPercentile(p), max));
  return { p50: at(50), p90: at(90), p99: at(99), p999: at(99.9), max: ms(max), mean: ms(histogram.mean) };
}

/** Nearest-rank percentile of a plain list of samples (the chaos run keeps a few dozen). */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

export function recoveryFigures(samplesMs: readonly number[]): RecoveryFigures | null {
  if (samplesMs.length === 0) return null;
  const sorted = [...samplesMs].sort((a, b) => a - b);
  const round = (v: number) => Math.round(v * 1000) / 1000;
  return {
    samples: sorted.length,
    p50: round(percentile(sorted, 50)),
    p99: round(percentile(sorted, 99)),
    max: round(sorted[sorted.length - 1]!),
  };
}

/** Every error except the handler's own answer means a request the cluster dropped. */
export function lostRequests(errors: Record<string, number>): number {
  let lost = 0;
  for (const [code, count] of Object.entries(errors)) if (code !== "E_HANDLER") lost += count;
  return lost;
}

export function buildReport(config: BenchConfig, result: LoadResult, chaos?: ChaosFigures): BenchReport {
  const failed = Object.values(result.errors).reduce((a, b) => a + b, 0);
  const seconds = result.elapsedMs / 1000;
  const report: BenchReport = {
    config,
    startedAt: new Date(result.startedAt).toISOString(),
    elapsedMs: Math.round(result.elapsedMs * 1000) / 1000,
    completed: result.completed,
    failed,
    throughput: seconds > 0 ? Math.round((result.completed / seconds) * 10) / 10 : 0,
    latency: latencyFigures(result.histogram),
    errors: result.errors,
    retries: { requests: result.retried, extraAttempts: result.extraAttempts },
  };
  if (chaos) report.chaos = chaos;
  return report;
}

const count = (n: number): string => n.toLocaleString("en-US");
const fixed = (n: number, digits = 2): string => n.toFixed(digits);

/** The report as the lines `crew bench` prints. */
export function formatReport(r: BenchReport): string[] {
  const c = r.config;
  const payload = c.payload === undefined ? "" : ` ${JSON.stringify(c.payload)}`;
  const lines = [
    `crew bench: ${c.handler}${payload} on ${c.host}:${c.port}, ${c.connections} connections × ${c.pipeline} in flight`,
    `  requests    ${count(r.completed)} ok, ${count(r.failed)} failed in ${fixed(r.elapsedMs / 1000)} s`,
    `  throughput  ${count(Math.round(r.throughput))} req/s`,
    `  latency ms  p50 ${fixed(r.latency.p50, 3)}  p90 ${fixed(r.latency.p90, 3)}  p99 ${fixed(r.latency.p99, 3)}  p99.9 ${fixed(r.latency.p999, 3)}  max ${fixed(r.latency.max, 3)}`,
    `  retries     ${count(r.retries.requests)} requests retried (${count(r.retries.extraAttempts)} extra attempts)`,
  ];
  const codes = Object.entries(r.errors).sort((a, b) => b[1] - a[1]);
  lines.push(`  errors      ${codes.length === 0 ? "none" : codes.map(([code, n]) => `${code} ${count(n)}`).join(", ")}`);
  if (r.chaos) lines.push(...formatChaos(r.chaos));
  return lines;
}

function formatChaos(ch: ChaosFigures): string[] {
  const recovery = ch.recovery
    ? `p50 ${fixed(ch.recovery.p50)} ms  p99 ${fixed(ch.recovery.p99)} ms  max ${fixed(ch.recovery.max)} ms (${ch.recovery.samples} retried requests)`
    : "no request was caught on a killed node";
  const lines = [
    `  chaos       a node killed every ${ch.killEveryMs} ms: ${count(ch.kills)} kills, ${count(ch.skipped)} skipped`,
    `  lost        ${count(ch.lost)}${ch.lost === 0 ? " (every request answered)" : " REQUESTS LOST"}`,
    `  recovery    ${recovery}`,
  ];
  if (ch.killErrors > 0) lines.push(`  kill errors ${count(ch.killErrors)} (last: ${ch.lastKillError})`);
  return lines;
}
