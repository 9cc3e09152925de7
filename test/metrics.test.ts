import type { EventEmitter } from "node:events";
import parsePrometheus from "parse-prometheus-text-format";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCluster, type Cluster } from "crew";
import { waitFor, watch } from "./helpers/cluster-events.js";
import { HandlerFolder } from "./helpers/handler-folder.js";
import { Client } from "../dist/protocol/client.js";

let cluster: Cluster;
let events: EventEmitter;
let base: string;
let tcpPort: number;
const cleanups: Array<() => Promise<void>> = [];

beforeAll(async () => {
  // Lookahead off: a request past the busy nodes waits in the queue, which the gauges read.
  cluster = await createCluster({ handlers: "workers", threads: 2, nodeLookahead: 0, logLevel: "silent", maxFrameBytes: 4096 });
  cleanups.push(() => cluster.close());
  const info = await cluster.listen({ port: 0, httpPort: 0 });
  base = `http://127.0.0.1:${info.httpPort}`;
  tcpPort = info.port;
  events = watch(cluster);
});

afterAll(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function scrape(url = base): Promise<string> {
  const res = await fetch(`${url}/metrics`);
  expect(res.status).toBe(200);
  return res.text();
}

function post(handler: string, body?: string, signal?: AbortSignal, url = base): Promise<Response> {
  return fetch(`${url}/v1/run/${handler}`, { method: "POST", headers: { "content-type": "application/json" }, body, signal });
}

/**
 * One sample's value: the line named `name` whose labels are exactly `labels`, or 0 when
 * there is none (a series not yet created). The npm parser folds histogram series of
 * different labels together, so values are read from the text; the parser checks syntax.
 */
function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  const want = JSON.stringify(Object.entries(labels).sort());
  for (const line of text.split("\n")) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = [...(m[2] ?? "").matchAll(/([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1], l[2]]);
    if (JSON.stringify(got.sort()) === want) return Number(m[3]);
  }
  return 0;
}

/** The sum of every series of a family, whatever its labels. */
function total(text: string, name: string): number {
  return text
    .split("\n")
    .filter((line) => line.startsWith(`${name}{`) || line.startsWith(`${name} `))
    .reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(" ") + 1)), 0);
}

describe("GET /metrics", () => {
  it("parses with a Prometheus text parser, one family per name, named by the conventions", async () => {
    const text = await scrape();
    const families = parsePrometheus(text) as Array<{ name: string; help: string; type: string }>;
    const types = Object.fromEntries(families.map((f) => [f.name, f.type]));
    expect(types).toMatchObject({
      crew_requests_total: "COUNTER",
      crew_request_queue_seconds: "HISTOGRAM",
      crew_request_run_seconds: "HISTOGRAM",
      crew_request_duration_seconds: "HISTOGRAM",
      crew_requests_in_flight: "GAUGE",
      crew_queue_length: "GAUGE",
      crew_nodes: "GAUGE",
      crew_node_crashes_total: "COUNTER",
      crew_node_restarts_total: "COUNTER",
      crew_retries_total: "COUNTER",
      crew_checkpoints_total: "COUNTER",
      process_cpu_user_seconds_total: "COUNTER", // the primary's process metrics, default names
      nodejs_heap_size_used_bytes: "GAUGE",
    });
    const declared = text.split("\n").filter((l) => l.startsWith("# TYPE ")).map((l) => l.split(" ")[2]);
    expect(new Set(declared).size).toBe(declared.length);
    for (const f of families) {
      expect(f.help, f.name).not.toBe("");
      if (f.type === "COUNTER") expect(f.name).toMatch(/_total$/);
      if (f.type === "HISTOGRAM" && f.name.startsWith("crew_")) expect(f.name).toMatch(/_seconds$/);
    }
    // The parser is a real check: a malformed line fails it.
    expect(() => parsePrometheus(`${text}crew_broken{handler="echo" 1\n`)).toThrow();
  });

  it("counts requests by handler and code, over HTTP and TCP, and times them", async () => {
    const before = await scrape();
    for (let i = 0; i < 3; i++) expect((await post("echo", `${i}`)).status).toBe(200);
    const client = new Client({ port: tcpPort });
    try {
      await client.run("echo", 1);
      await client.run("echo", 2);
    } finally {
      await client.close();
    }
    expect((await post("nope", "{}")).status).toBe(404);
    expect((await post("crash", '{"mode":"throw"}')).status).toBe(500);
    const after = await scrape();
    const delta = (name: string, labels: Record<string, string>) => sample(after, name, labels) - sample(before, name, labels);
    expect(delta("crew_requests_total", { handler: "echo", code: "ok" })).toBe(5);
    expect(delta("crew_requests_total", { handler: "<unknown>", code: "E_UNKNOWN_HANDLER" })).toBe(1);
    expect(delta("crew_requests_total", { handler: "crash", code: "E_HANDLER" })).toBe(1);
    for (const h of ["crew_request_queue_seconds", "crew_request_run_seconds", "crew_request_duration_seconds"]) {
      expect(delta(`${h}_count`, { handler: "echo" }), h).toBe(5);
      expect(delta(`${h}_bucket`, { handler: "echo", le: "+Inf" }), h).toBe(5);
      // Buckets are cumulative: never decreasing, ending at +Inf with the count.
      const buckets = after.split("\n").filter((l) => l.startsWith(`${h}_bucket{handler="echo",`));
      const values = buckets.map((l) => Number(l.slice(l.lastIndexOf(" ") + 1)));
      expect(values, h).toEqual([...values].sort((a, b) => a - b));
      expect(buckets.at(-1), h).toContain('le="+Inf"');
      expect(values.at(-1), h).toBe(sample(after, `${h}_count`, { handler: "echo" }));
    }
    expect(sample(after, "crew_request_duration_seconds_sum", { handler: "echo" })).toBeGreaterThan(0);
  });

  it("counts requests refused at the HTTP door", async () => {
    const before = await scrape();
    expect((await post("echo", `"${"x".repeat(5000)}"`)).status).toBe(413);
    expect((await post("echo", "{not json")).status).toBe(400);
    const after = await scrape();
    for (const code of ["E_FRAME_TOO_LARGE", "E_BAD_REQUEST"]) {
      const labels = { handler: "echo", code };
      expect(sample(after, "crew_requests_total", labels) - sample(before, "crew_requests_total", labels), code).toBe(1);
    }
  });

  it("counts a node crash, its restart and the retry", async () => {
    const before = await scrape();
    const restarted = waitFor(events, "nodeRestarted");
    const res = await post("crash", '{"mode":"exit","code":3,"onAttempt":1}');
    expect(res.status).toBe(200);
    expect(((await res.json()) as any).meta.attempts).toBe(2);
    const [node] = await restarted;
    const after = await scrape();
    expect(total(after, "crew_node_crashes_total") - total(before, "crew_node_crashes_total")).toBe(1);
    const labels = { node: node.id, kind: "thread" };
    expect(sample(after, "crew_node_crashes_total", labels) - sample(before, "crew_node_crashes_total", labels)).toBe(1);
    expect(sample(after, "crew_node_restarts_total", labels) - sample(before, "crew_node_restarts_total", labels)).toBe(1);
    const retries = { handler: "crash" };
    expect(sample(after, "crew_retries_total", retries) - sample(before, "crew_retries_total", retries)).toBe(1);
    expect(sample(after, "crew_nodes", { state: "up", kind: "thread" })).toBe(2);
  });

  it("counts checkpoints stored", async () => {
    const before = sample(await scrape(), "crew_checkpoints_total", { handler: "sum" });
    const res = await post("sum", '{"n":250001,"every":50000}');
    expect(res.status).toBe(200);
    // Checkpoints at i = 50000, 100000, 150000, 200000, 250000.
    expect(sample(await scrape(), "crew_checkpoints_total", { handler: "sum" }) - before).toBe(5);
  });

  it("reads in-flight, queue length and node states live", async () => {
    const abort = new AbortController();
    const started = [waitFor(events, "attemptStarted", (job, n) => n.id === "t0"), waitFor(events, "attemptStarted", (job, n) => n.id === "t1")];
    const calls = [post("sleep", '{"ms":60000}', abort.signal).catch(() => {}), post("sleep", '{"ms":60000}', abort.signal).catch(() => {})];
    await Promise.all(started);
    calls.push(post("sleep", '{"ms":60000}', abort.signal).catch(() => {}));
    while (cluster.queueLength < 1) await new Promise((r) => setImmediate(r)); // no event for "queued"
    const busy = await scrape();
    expect(sample(busy, "crew_requests_in_flight")).toBe(2);
    expect(sample(busy, "crew_queue_length")).toBe(1);
    expect(sample(busy, "crew_nodes", { state: "up", kind: "thread" })).toBe(2);
    expect(sample(busy, "crew_nodes", { state: "down", kind: "thread" })).toBe(0);
    const cancelled = sample(busy, "crew_requests_total", { handler: "sleep", code: "E_CANCELLED" });
    let done = 0;
    const allDone = waitFor(events, "requestDone", (job) => job.handler === "sleep" && ++done === 3);
    abort.abort();
    await Promise.all(calls);
    await allDone;
    const idle = await scrape();
    expect(sample(idle, "crew_requests_total", { handler: "sleep", code: "E_CANCELLED" }) - cancelled).toBe(3);
    expect(sample(idle, "crew_queue_length")).toBe(0);
  });

  it("gives a handler a reload added its own series, listed at 0 from the reload on", async () => {
    const folder = new HandlerFolder();
    cleanups.push(async () => folder.dispose());
    folder.writeVersion("first", 1);
    const other = await createCluster({ handlers: folder.dir, threads: 1, logLevel: "silent" });
    cleanups.push(() => other.close());
    const url = `http://127.0.0.1:${(await other.listen({ port: 0, httpPort: 0 })).httpPort}`;
    expect(sample(await scrape(url), "crew_requests_total", { handler: "first", code: "ok" })).toBe(0);
    folder.writeVersion("added", 1);
    await other.reload();
    const listed = await scrape(url);
    expect(listed).toContain('crew_requests_total{handler="added",code="ok"} 0');
    expect((await post("added", "{}", undefined, url)).status).toBe(200);
    expect((await post("nosuch", "{}", undefined, url)).status).toBe(404);
    const after = await scrape(url);
    expect(sample(after, "crew_requests_total", { handler: "added", code: "ok" })).toBe(1);
    expect(sample(after, "crew_request_duration_seconds_count", { handler: "added" })).toBe(1);
    expect(sample(after, "crew_requests_total", { handler: "<unknown>", code: "E_UNKNOWN_HANDLER" })).toBe(1);
    expect(total(after, "crew_requests_total")).toBe(2);
  });

  it("keeps each cluster's metrics in its own registry", async () => {
    const other = await createCluster({ handlers: "workers", threads: 1, logLevel: "silent" });
    cleanups.push(() => other.close());
    const url = `http://127.0.0.1:${(await other.listen({ port: 0, httpPort: 0 })).httpPort}`;
    const mineBefore = sample(await scrape(), "crew_requests_total", { handler: "echo", code: "ok" });
    expect((await post("echo", "1", undefined, url)).status).toBe(200);
    expect((await post("echo", "2", undefined, url)).status).toBe(200);
    const theirs = await scrape(url);
    expect(sample(theirs, "crew_requests_total", { handler: "echo", code: "ok" })).toBe(2);
    expect(sample(theirs, "crew_nodes", { state: "up", kind: "thread" })).toBe(1);
    expect(sample(theirs, "process_cpu_user_seconds_total")).toBeGreaterThan(0);
    expect(sample(await scrape(), "crew_requests_total", { handler: "echo", code: "ok" })).toBe(mineBefore);
  });
});
