import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CancelledError, ConnectionError, createCluster, type Cluster } from "crew";
import { Client } from "../dist/protocol/client.js";
import { duration, formatStatus } from "../dist/commands/status.js";
import { closedPort } from "./helpers/fake-server.js";

const BIN = "bin/crew.js";

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs the real CLI in a child process and collects what it prints. */
function crew(args: string[]): Promise<Exit> {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  return collect(child);
}

async function collect(child: ChildProcess): Promise<Exit> {
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (d: Buffer) => (stdout += d));
  child.stderr!.on("data", (d: Buffer) => (stderr += d));
  const [code, signal] = (await once(child, "close")) as [number | null, NodeJS.Signals | null];
  return { code, signal, stdout, stderr };
}

describe("crew start, run and status as real processes", () => {
  let server: ChildProcess;
  let serverExit: Promise<Exit>;
  let port: number;
  let httpPort: number;

  beforeAll(async () => {
    server = spawn(process.execPath, [BIN, "start", "--port", "0", "--http-port", "0", "--threads", "2", "--log-level", "info"], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    serverExit = collect(server);
    // The JSON log line "listening" carries both ports.
    for await (const line of createInterface({ input: server.stdout! })) {
      const entry = JSON.parse(line) as { msg: string; port: number; httpPort: number };
      if (entry.msg !== "listening") continue;
      ({ port, httpPort } = entry);
      break;
    }
    expect(httpPort).toBeGreaterThan(0);
  });

  afterAll(() => {
    if (server.exitCode === null && server.signalCode === null) server.kill("SIGKILL");
  });

  it("crew run prints the result as JSON and exits 0", async () => {
    const out = await crew(["run", "echo", '{"a":1}', "--port", String(port)]);
    expect(out).toMatchObject({ code: 0, stdout: '{"a":1}\n', stderr: "" });
  });

  it("crew run passes a bare JSON number, and runs with no payload", async () => {
    expect(await crew(["run", "fib", "20", "--port", String(port)])).toMatchObject({ code: 0, stdout: "6765\n" });
    expect(await crew(["run", "echo", "--port", String(port), "--key", "k", "--priority", "3"])).toMatchObject({ code: 0, stdout: "null\n" });
  });

  it("crew run --idempotency-key: the same key again is answered the same reply, replayed; with another payload it is a conflict", async () => {
    const args = ["run", "echo", '{"a":1}', "--port", String(port), "--idempotency-key", "cli-key-1", "--meta"];
    const first = await crew(args);
    expect(first.code).toBe(0);
    const again = await crew(args);
    expect(again.code).toBe(0);
    const [one, two] = [JSON.parse(first.stdout), JSON.parse(again.stdout)];
    expect(two).toEqual({ result: { a: 1 }, meta: { ...one.meta, replayed: true } });
    const other = await crew(["run", "echo", '{"a":2}', "--port", String(port), "--idempotency-key", "cli-key-1"]);
    expect(other.code).toBe(1);
    expect(other.stderr).toMatch(/^E_IDEMPOTENCY_CONFLICT: /);
  });

  it("crew run prints CODE: message on stderr and exits 1 for an error reply", async () => {
    const unknown = await crew(["run", "nope", "{}", "--port", String(port)]);
    expect(unknown.code).toBe(1);
    expect(unknown.stdout).toBe("");
    expect(unknown.stderr).toMatch(/^E_UNKNOWN_HANDLER: no handler named "nope"/);
    const late = await crew(["run", "sleep", '{"ms":5000}', "--timeout-ms", "50", "--port", String(port)]);
    expect(late.code).toBe(1);
    expect(late.stderr).toMatch(/^E_TIMEOUT: deadline of 50 ms passed/);
  });

  it("crew run exits 2 for a payload that is not JSON, before connecting", async () => {
    const out = await crew(["run", "echo", "{a:1}", "--port", String(await closedPort())]);
    expect(out.code).toBe(2);
    expect(out.stderr).toContain("the payload is not valid JSON");
  });

  it("crew run reads the payload from stdin (-) or a file (@FILE), and --meta prints the reply's meta", async () => {
    const child = spawn(process.execPath, [BIN, "run", "echo", "-", "--port", String(port)], { stdio: ["pipe", "pipe", "pipe"] });
    const exit = collect(child);
    child.stdin!.end('{"from":"stdin","n":[1,2,3]}');
    expect(await exit).toMatchObject({ code: 0, stdout: '{"from":"stdin","n":[1,2,3]}\n', stderr: "" });

    const file = join(mkdtempSync(join(tmpdir(), "crew-run-")), "payload.json");
    writeFileSync(file, '{"from":"file"}');
    const withMeta = await crew(["run", "echo", `@${file}`, "--meta", "--port", String(port)]);
    expect(withMeta.code).toBe(0);
    const out = JSON.parse(withMeta.stdout) as { result: unknown; meta: { node: string; attempts: number } };
    expect(out.result).toEqual({ from: "file" });
    expect(out.meta).toMatchObject({ attempts: 1 });
    expect(out.meta.node).toMatch(/^t[01]$/);

    const missing = await crew(["run", "echo", `@${file}.nope`, "--port", String(port)]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain(`crew: the payload file ${file}.nope cannot be read: ENOENT`);
  });

  it("every command takes --host, --port and --http-port, and says so when a port is the other kind", async () => {
    const run = await crew(["run", "echo", "1", "--host", "127.0.0.1", "--port", String(httpPort), "--http-port", String(httpPort)]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain("it answered HTTP, so that is an HTTP port (crew's HTTP front?), not the cluster's TCP port (--port takes the cluster's TCP port)");
    const status = await crew(["status", "--host", "127.0.0.1", "--port", String(port), "--http-port", String(port)]);
    expect(status.code).toBe(1);
    expect(status.stderr).toMatch(/did not answer in HTTP \(HPE_[A-Z_]+\): is that the cluster's TCP port\? --http-port takes its HTTP port/);
    const bench = await crew(["bench", "--host", "127.0.0.1", "--port", String(httpPort), "--http-port", String(httpPort), "--requests", "5"]);
    expect(bench.code).toBe(1);
    expect(bench.stderr).toContain("it answered HTTP, so that is an HTTP port");
  });

  it("crew run exits 1 with a clear message when nothing listens", async () => {
    const out = await crew(["run", "echo", "{}", "--port", String(await closedPort())]);
    expect(out.code).toBe(1);
    expect(out.stderr).toMatch(/could not connect to 127\.0\.0\.1:\d+: .*ECONNREFUSED.*crew start/);
  });

  it("crew status --json prints the status JSON", async () => {
    const out = await crew(["status", "--http-port", String(httpPort), "--json"]);
    expect(out.code).toBe(0);
    const status = JSON.parse(out.stdout);
    expect(status.nodes.map((n: { id: string }) => n.id)).toEqual(["t0", "t1"]);
    expect(status.requests.accepted).toBeGreaterThan(0);
  });

  it("crew status prints a table naming every node", async () => {
    const out = await crew(["status", "--http-port", String(httpPort)]);
    expect(out.code).toBe(0);
    const lines = out.stdout.split("\n");
    expect(lines[0]).toMatch(/^NODE\s+KIND\s+PID\/THREAD\s+STATE\s+IN FLIGHT\s+COMPLETED\s+CRASHES\s+RESTARTS\s+HEAP MiB\s+RSS MiB/);
    expect(lines.find((l) => l.startsWith("t0 "))).toMatch(/thread\s+thread \d+\s+up/);
    expect(lines.find((l) => l.startsWith("t1 "))).toMatch(/thread\s+thread \d+\s+up/);
    expect(out.stdout).toMatch(/queue\s+0 waiting \(max 10000\)/);
  });

  it("crew status --requests lists the requests in flight, oldest first", async () => {
    const client = new Client({ port });
    const abort = new AbortController();
    try {
      const held = client.run("sleep", { ms: 60_000 }, { signal: abort.signal, priority: 4 }).catch((err: unknown) => err);
      // Frames on one connection are read in order: once the ping is answered, the sleep was accepted.
      await client.ping();
      const out = await crew(["status", "--requests", "--http-port", String(httpPort)]);
      expect(out.code).toBe(0);
      const lines = out.stdout.split("\n");
      const header = lines.findIndex((l) => l.startsWith("REQUEST "));
      expect(lines[header]).toMatch(/^REQUEST\s+HANDLER\s+STATE\s+NODE\s+ATTEMPT\s+PRIORITY\s+AGE\s+CHECKPOINT AGE$/);
      expect(lines[header + 1]).toMatch(/^\S+\s+sleep\s+(running\s+t[01]\s+1|queued\s+-\s+0)\s+4\s+\d+\.\ds\s+-$/);
      const json = await crew(["status", "--requests", "--json", "--http-port", String(httpPort)]);
      const body = JSON.parse(json.stdout) as { status: { nodes: unknown[] }; requests: { total: number; requests: Array<{ handler: string }> } };
      expect(body.status.nodes).toHaveLength(2);
      expect(body.requests.requests.map((r) => r.handler)).toEqual(["sleep"]);
      abort.abort();
      expect(await held).toBeInstanceOf(CancelledError);
    } finally {
      await client.close();
    }
  });

  it("crew status exits 1 with a clear message when nothing listens", async () => {
    const out = await crew(["status", "--http-port", String(await closedPort())]);
    expect(out.code).toBe(1);
    expect(out.stderr).toMatch(/could not reach http:\/\/127\.0\.0\.1:\d+\/v1\/status: ECONNREFUSED/);
  });

  it("crew status --watch refreshes until Ctrl-C, then exits 0", async () => {
    const child = spawn(process.execPath, [BIN, "status", "--http-port", String(httpPort), "--watch", "--interval-ms", "50"], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    const exit = collect(child);
    try {
      let frames = 0;
      for await (const line of createInterface({ input: child.stdout! })) {
        if (line.startsWith("crew status · ") && ++frames === 2) break;
      }
      child.kill("SIGINT");
      const out = await exit;
      expect(out.code).toBe(0);
      expect(out.stdout.match(/^t1 /gm)!.length).toBeGreaterThanOrEqual(2);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    }
  });

  it("SIGTERM drains the server, which exits 0", async () => {
    server.kill("SIGTERM");
    const out = await serverExit;
    expect(out.code).toBe(0);
    expect(out.stdout).toContain('"msg":"stopped"');
  });
});

describe("formatStatus", () => {
  const node = { inFlight: 0, completed: 0, crashes: 0, restarts: 0, lastExit: null };
  const status = {
    nodes: [
      { ...node, id: "t0", kind: "thread", pid: 10, threadId: 3, state: "up", inFlight: 1, completed: 1234, heapUsed: 9.5 * 1024 * 1024, rss: 999 },
      { ...node, id: "p0", kind: "process", pid: 4321, threadId: null, state: "down", crashes: 2, restarts: 1, heapUsed: null, rss: 64 * 1024 * 1024, lastExit: "exited with code 70" },
    ],
    queue: { length: 7, max: 100 },
    requests: { accepted: 20, refused: 1, completed: 12, failed: 2, retries: 3, checkpoints: 4, active: 6 },
    balancer: "hash",
    draining: true,
    uptimeMs: 3_723_000,
  };

  it("lays the nodes out in aligned columns, with - where nothing is known", () => {
    const lines = formatStatus(status as never).split("\n");
    expect(lines[0]).toBe("NODE  KIND     PID/THREAD  STATE  IN FLIGHT  COMPLETED  CRASHES  RESTARTS  HEAP MiB  RSS MiB  LAST EXIT");
    expect(lines[1]).toBe("t0    thread   thread 3    up             1       1234        0         0       9.5        -  -");
    expect(lines[2]).toBe("p0    process  pid 4321    down           0          0        2         1         -     64.0  exited with code 70");
  });

  it("sums up the queue, the counters and the cluster", () => {
    const text = formatStatus(status as never);
    expect(text).toContain("queue      7 waiting (max 100)");
    expect(text).toContain("requests   6 active · 20 accepted · 12 completed · 2 failed · 1 refused");
    expect(text).toContain("recovery   3 retries · 4 checkpoints stored");
    expect(text).toContain("cluster    balancer hash · up 1h 2m 3s · DRAINING");
  });

  it("writes durations from their largest unit", () => {
    expect([duration(0), duration(59_999), duration(61_000), duration(90_061_000)]).toEqual(["0s", "59s", "1m 1s", "1d 1h 1m 1s"]);
  });
});

describe("Client against a real cluster", () => {
  const open: Array<Cluster | Client> = [];
  afterAll(async () => {
    for (const thing of open.reverse()) await thing.close();
  });

  async function cluster(port = 0): Promise<{ c: Cluster; port: number }> {
    const c = await createCluster({ handlers: "workers", threads: 1, logLevel: "silent" });
    open.push(c);
    return { c, port: (await c.listen({ port })).port };
  }

  it("reconnects once the server is back on its port", async () => {
    const first = await cluster();
    const client = new Client({ port: first.port });
    open.push(client);
    expect(await client.run("echo", "before")).toBe("before");
    await first.c.close();
    await expect(client.run("echo", "while down")).rejects.toBeInstanceOf(ConnectionError);
    await cluster(first.port);
    expect(await client.run("echo", "after")).toBe("after");
  });

  it("aborting a request sends cancel: the cluster answers E_CANCELLED and the handler lets go", async () => {
    const { c, port } = await cluster();
    const client = new Client({ port });
    open.push(client);
    const seen: { node?: any; outcome?: any } = {};
    const started = new Promise<void>((resolve) => c.observe({ attemptStarted: (_job, node) => ((seen.node = node), resolve()) }));
    const done = new Promise<void>((resolve) => c.observe({ requestDone: (_job, outcome) => ((seen.outcome = outcome), resolve()) }));
    const abort = new AbortController();
    const call = client.run("sleep", { ms: 60_000 }, { signal: abort.signal });
    await started;
    abort.abort("changed my mind");
    await expect(call).rejects.toBeInstanceOf(CancelledError);
    await done;
    expect(seen.outcome.error.code).toBe("E_CANCELLED");
    // The cancel frame, not a hang-up: the connection stays and serves the next request.
    expect(seen.outcome.error.message).toBe("cancelled by the client");
    expect(await client.run("echo", "still here")).toBe("still here");
    expect(seen.node.crashes).toBe(0); // sleep honoured ctx.signal, so its node was not killed
  });
});
