import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { createCluster, type Cluster } from "crew";
import { Chaos, parseChaos } from "../dist/bench/chaos.js";
import { parseDuration } from "../dist/bench/duration.js";
import { GIVE_UP_MS, newLatencyHistogram, RETRY_MAX_MS, RETRY_MIN_MS, startLoad, type LoadResult } from "../dist/bench/load.js";
import { waitFor, watch } from "./helpers/cluster-events.js";
import { startProgress } from "../dist/bench/progress.js";
import {
  buildReport,
  formatReport,
  lostRequests,
  percentile,
  recoveryFigures,
  type BenchConfig,
  type BenchReport,
} from "../dist/bench/report.js";

const CREW = fileURLToPath(new URL("../bin/crew.js", import.meta.url));

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function cluster(options: { threads?: number; processes?: number; http?: boolean } = {}) {
  const c: Cluster = await createCluster({ handlers: "workers", threads: options.threads ?? 1, processes: options.processes, logLevel: "silent" });
  cleanups.push(() => c.close());
  const info = await c.listen({ port: 0, httpPort: options.http ? 0 : undefined });
  return { cluster: c, port: info.port, httpPort: info.httpPort };
}

/** Counts node crashes as the cluster reports them, and lets a test wait for a count. */
function crashCounter(c: Cluster) {
  let count = 0;
  let waiter: (() => void) | null = null;
  let target = Infinity;
  c.observe({
    nodeCrashed: () => {
      count++;
      if (count >= target) waiter?.();
    },
  });
  return {
    get count() {
      return count;
    },
    reach(n: number): Promise<void> {
      if (count >= n) return Promise.resolve();
      target = n;
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`only ${count} of ${n} crashes seen`)), 10_000);
        waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    },
  };
}

function tempFile(name: string): string {
  const dir = mkdtempSync(join(tmpdir(), "crew-bench-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, name);
}

/** Runs `crew bench …` as a user would (stdout and stderr are pipes: not a TTY). */
async function crewBench(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [CREW, "bench", ...args], { stdio: ["ignore", "pipe", "pipe"] });
  cleanups.push(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (s: string) => (stdout += s));
  child.stderr.setEncoding("utf8").on("data", (s: string) => (stderr += s));
  const [code] = (await once(child, "close")) as [number | null];
  return { code, stdout, stderr };
}

function expectDocumentedFields(report: BenchReport): void {
  expect(typeof report.throughput).toBe("number");
  expect(report.throughput).toBeGreaterThan(0);
  const { p50, p90, p99, p999, max } = report.latency;
  for (const v of [p50, p90, p99, p999, max]) expect(typeof v).toBe("number");
  expect(p50).toBeGreaterThan(0);
  expect(p50).toBeLessThanOrEqual(p90);
  expect(p90).toBeLessThanOrEqual(p99);
  expect(p99).toBeLessThanOrEqual(p999);
  expect(p999).toBeLessThanOrEqual(max);
  expect(report.errors).toBeTypeOf("object");
  expect(report.retries).toEqual({ requests: expect.any(Number), extraAttempts: expect.any(Number) });
}

describe("crew bench against a real cluster", () => {
  it("--requests N completes exactly N requests and writes the documented JSON", async () => {
    const { cluster: c, port } = await cluster();
    const json = tempFile("report.json");
    // 250 is not a multiple of 3 × 7 slots: the last round must stop mid-way, not overshoot.
    const out = await crewBench(["--port", String(port), "--handler", "echo", "--payload", '{"n":1}', "--requests", "250", "--connections", "3", "--pipeline", "7", "--json", json]);
    expect(out.code, out.stderr).toBe(0);
    const report = JSON.parse(readFileSync(json, "utf8")) as BenchReport;
    expect(report.completed).toBe(250);
    expect(report.failed).toBe(0);
    expect(report.errors).toEqual({});
    expect(report.config).toMatchObject({ port, handler: "echo", payload: { n: 1 }, connections: 3, pipeline: 7, requests: 250, durationMs: null });
    expectDocumentedFields(report);
    // The server saw exactly as many as the report claims: none lost, none extra.
    expect((await c.status()).requests.accepted).toBe(250);
    expect(out.stdout).toContain("throughput");
    expect(out.stdout).toContain("250 ok, 0 failed");
  });

  it("counts error replies by code, apart from completed requests", async () => {
    const { port } = await cluster();
    const run = startLoad({ host: "127.0.0.1", port, handler: "nope", connections: 2, pipeline: 4, requests: 40 });
    const result = await run.done;
    expect(result.completed).toBe(0);
    expect(result.errors).toEqual({ E_UNKNOWN_HANDLER: 40 });
    expect(result.histogram.totalCount).toBe(0);
    expect(lostRequests(result.errors)).toBe(40);
  });

  it("fails at once, naming the address, when nothing listens", async () => {
    const { cluster: c, port } = await cluster();
    await c.close(); // the port is now closed
    const out = await crewBench(["--port", String(port), "--requests", "10"]);
    expect(out.code).not.toBe(0);
    expect(out.stderr).toContain(`127.0.0.1:${port}`);
  });

  it("checks the handler with one request before loading, and stops there when it does not exist", async () => {
    const { cluster: c, port } = await cluster();
    const out = await crewBench(["--port", String(port), "--handler", "nope", "--duration", "10m"]);
    expect(out.code).toBe(1);
    expect(out.stderr).toContain('E_UNKNOWN_HANDLER: no handler named "nope"');
    expect(out.stdout).not.toContain("throughput");
    expect((await c.status()).requests.refused).toBe(1);
  });

  it("exits 1 when most requests fail", async () => {
    const { port } = await cluster();
    const out = await crewBench(["--port", String(port), "--handler", "crash", "--payload", '{"mode":"throw"}', "--requests", "40"]);
    expect(out.code).toBe(1);
    expect(out.stdout).toContain("0 ok, 40 failed");
    expect(out.stderr).toContain("crew: 40 of 40 requests failed (errors above)");
  });

  it("backs off when the cluster goes away mid-run, then gives up and exits 1", async () => {
    const { cluster: c, port } = await cluster();
    const events = watch(c);
    const connections = 2;
    const pipeline = 4;
    const bench = crewBench(["--port", String(port), "--duration", "10m", "--connections", String(connections), "--pipeline", String(pipeline)]);
    await waitFor(events, "requestDone");
    await c.closeNow();
    const out = await bench;
    expect(out.code).toBe(1);
    expect(out.stderr).toContain("the cluster is gone; stopped sending");
    // Without backoff each slot would fail thousands of times in GIVE_UP_MS; with it, each
    // slot sends at most one request per step of RETRY_MIN_MS doubling to RETRY_MAX_MS.
    const steps = Math.ceil(Math.log2(RETRY_MAX_MS / RETRY_MIN_MS)) + Math.ceil(GIVE_UP_MS / RETRY_MAX_MS) + 2;
    const gone = out.stdout.match(/E_CONNECTION (\d+)/)?.[1] ?? "0";
    const draining = out.stdout.match(/E_SHUTTING_DOWN (\d+)/)?.[1] ?? "0";
    expect(Number(gone) + Number(draining)).toBeGreaterThan(0);
    expect(Number(gone) + Number(draining)).toBeLessThanOrEqual(connections * pipeline * steps);
  });

  it("--chaos kills nodes through the HTTP front while loading, and no request is lost", async () => {
    const { cluster: c, port, httpPort } = await cluster({ threads: 2, processes: 1, http: true });
    const crashes = crashCounter(c);
    const json = tempFile("chaos.json");
    // sleep keeps every node busy, so each kill catches a request in flight and forces a retry.
    const out = await crewBench([
      "--port", String(port), "--http-port", String(httpPort), "--handler", "sleep", "--payload", '{"ms":5}',
      "--connections", "2", "--pipeline", "8", "--duration", "2s", "--chaos", "kill-every=200ms", "--json", json,
    ]);
    expect(out.code, out.stderr + out.stdout).toBe(0);
    const report = JSON.parse(readFileSync(json, "utf8")) as BenchReport;
    const chaos = report.chaos!;
    expect(chaos.killErrors, chaos.lastKillError ?? "").toBe(0);
    expect(chaos.kills).toBeGreaterThan(0);
    expect(chaos.lost).toBe(0);
    expect(report.failed).toBe(0);
    expect(report.retries.requests).toBeGreaterThan(0);
    expect(chaos.recovery?.samples).toBe(report.retries.requests);
    expect(chaos.recovery!.p50).toBeGreaterThan(0);
    // Every kill the report counts landed on a node (a node's exit is seen just after its 202).
    await crashes.reach(chaos.kills);
    expect(crashes.count).toBe(chaos.kills);
    expect(out.stdout).toContain("every request answered");
  });

  it("--chaos refuses to start without an HTTP front to kill through", async () => {
    const { port } = await cluster();
    const out = await crewBench(["--port", String(port), "--http-port", String(port), "--requests", "5", "--chaos", "kill-every=100ms"]);
    expect(out.code).not.toBe(0);
    expect(out.stderr).toContain("--chaos needs the cluster's HTTP front");
  });
});

describe("report math", () => {
  const config: BenchConfig = { host: "127.0.0.1", port: 7070, handler: "echo", payload: null, connections: 1, pipeline: 1, durationMs: 2000, requests: null };

  /** 1000 requests with latencies 1, 2, … 1000 ms, over 2 s. */
  function fixedResult(): LoadResult {
    const histogram = newLatencyHistogram();
    for (let ms = 1; ms <= 1000; ms++) histogram.recordValue(ms * 1000);
    return { startedAt: 0, elapsedMs: 2000, completed: 1000, errors: { E_TIMEOUT: 3, E_HANDLER: 2 }, retried: 4, extraAttempts: 5, histogram };
  }

  it("derives throughput and percentiles in ms from a fixed histogram", () => {
    const report = buildReport(config, fixedResult());
    expect(report.throughput).toBe(500);
    expect(report.failed).toBe(5);
    expect(report.retries).toEqual({ requests: 4, extraAttempts: 5 });
    // HDR keeps 3 significant digits: within 0.1% of the exact order statistics.
    const exact = { p50: 500, p90: 900, p99: 990, p999: 999, max: 1000, mean: 500.5 };
    for (const [key, value] of Object.entries(exact)) {
      expect(report.latency[key as keyof typeof exact]).toBeGreaterThanOrEqual(value * 0.999);
      expect(report.latency[key as keyof typeof exact]).toBeLessThanOrEqual(value * 1.001);
    }
  });

  it("counts every error but the handler's own as lost", () => {
    expect(lostRequests({ E_TIMEOUT: 3, E_HANDLER: 2, E_CONNECTION: 1 })).toBe(4);
    expect(lostRequests({ E_HANDLER: 2 })).toBe(0);
  });

  it("takes nearest-rank percentiles of recovery samples", () => {
    const samples = [10, 1, 9, 2, 8, 3, 7, 4, 6, 5];
    expect(percentile([...samples].sort((a, b) => a - b), 50)).toBe(5);
    expect(recoveryFigures(samples)).toEqual({ samples: 10, p50: 5, p99: 10, max: 10 });
    expect(recoveryFigures([])).toBeNull();
  });

  it("prints the figures, and lost requests loudly", () => {
    const chaos = { killEveryMs: 500, kills: 4, skipped: 1, killErrors: 0, lastKillError: null, lost: 3, recovery: recoveryFigures([2, 4]) };
    const text = formatReport(buildReport(config, fixedResult(), chaos)).join("\n");
    expect(text).toContain("500 req/s");
    expect(text).toContain("E_TIMEOUT 3, E_HANDLER 2");
    expect(text).toContain("4 requests retried (5 extra attempts)");
    expect(text).toContain("4 kills, 1 skipped");
    expect(text).toContain("3 REQUESTS LOST");
  });
});

describe("options and progress", () => {
  it("parses durations and the chaos spec, and names a bad one", () => {
    expect(parseDuration("500ms", "d")).toBe(500);
    expect(parseDuration("10s", "d")).toBe(10_000);
    expect(parseDuration("2m", "d")).toBe(120_000);
    expect(parseDuration("250", "d")).toBe(250);
    expect(() => parseDuration("soon", "duration")).toThrow(/duration must be a duration/);
    expect(parseChaos("kill-every=500ms")).toEqual({ killEveryMs: 500 });
    expect(() => parseChaos("kill=1s")).toThrow(/kill-every=500ms/);
  });

  it("checks the load options", () => {
    const base = { host: "127.0.0.1", port: 1, handler: "echo", connections: 1, pipeline: 1 };
    expect(() => startLoad({ ...base, requests: 1, durationMs: 1000 })).toThrow(/exactly one of duration and requests/);
    expect(() => startLoad({ ...base })).toThrow(/exactly one of duration and requests/);
    expect(() => startLoad({ ...base, connections: 0, requests: 1 })).toThrow(/connections must be a positive integer/);
  });

  it("writes plain lines when the stream is not a terminal", async () => {
    const stream = new PassThrough();
    const progress = startProgress({ stream, tty: false, goal: { requests: 10 }, read: () => ({ elapsedMs: 1000, completed: 7, failed: 1, retried: 2 }) });
    cleanups.push(() => progress.stop());
    const [line] = (await once(stream, "data")) as [Buffer];
    expect(line.toString()).toMatch(/^bench 1\.0s {2}7 ok {2}\d+ req\/s {2}1 failed {2}2 retried\n$/);
  });

  it("draws a bar when the stream is a terminal", async () => {
    const stream = Object.assign(new PassThrough(), { isTTY: true, columns: 120 });
    let text = "";
    const drawn = new Promise<void>((resolve) => {
      stream.on("data", (chunk: Buffer) => {
        text += chunk.toString();
        if (text.includes("42 ok")) resolve();
      });
    });
    const progress = startProgress({ stream, goal: { durationMs: 1000 }, read: () => ({ elapsedMs: 500, completed: 42, failed: 0, retried: 0 }) });
    cleanups.push(() => progress.stop());
    await drawn;
    expect(text).toContain("\u001b["); // cursor control: a live bar, not log lines
  });

  it("chaos check names the missing HTTP front", async () => {
    const { port } = await cluster();
    const chaos = new Chaos({ host: "127.0.0.1", httpPort: port, killEveryMs: 100 });
    await expect(chaos.check()).rejects.toThrow(/--chaos needs the cluster's HTTP front at http:\/\/127\.0\.0\.1:\d+/);
  });
});
