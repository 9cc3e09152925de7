/**
 * The ends of things: a client that hangs up with requests in flight, and the graceful
 * stop, both through createCluster and as a real `crew start` process sent SIGTERM.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type Cluster, createCluster, ShuttingDownError } from "crew";
import { NdjsonSocket, SocketPool } from "./helpers/ndjson-socket.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const HANDLERS = fileURLToPath(new URL("./fixtures/runtime/handlers", import.meta.url));

const sockets = new SocketPool();
afterEach(() => sockets.closeAll());

describe.each([
  { kind: "thread", nodes: { threads: 1 }, node: "t0" },
  { kind: "process", nodes: { processes: 1 }, node: "p0" },
])("a client that disconnects with requests in flight on a $kind node", ({ nodes, node }) => {
  let cluster: Cluster;
  let port: number;
  beforeAll(async () => {
    // A long kill grace: the node comes free only if the handler itself saw the abort.
    cluster = await createCluster({ handlers: HANDLERS, ...nodes, killGraceMs: 30_000, logLevel: "silent" });
    ({ port } = await cluster.listen({ port: 0 }));
  });
  afterAll(() => cluster?.close());

  it("has them cancelled (the running one's signal aborts, the queued ones never run) and others keep being served", async () => {
    const leaver = await sockets.open(port);
    const stayer = await sockets.open(port);
    const before = (await cluster.status()).requests;
    leaver.send(...["r1", "r2", "r3"].map((id) => ({ id, handler: "record-abort" })));
    // The pong proves all three were read: r1 runs on the one node, r2 and r3 wait.
    await leaver.ping();
    expect((await cluster.status()).requests.active - before.active).toBe(3);
    await leaver.close();

    // `aborts` runs on the same node once record-abort lets go of it, and lists what it saw.
    const reply = await stayer.request({ id: "q", handler: "aborts" });
    expect(reply).toMatchObject({ ok: true, result: { node } });
    const { aborts } = reply.result as { aborts: Array<{ code: string }> };
    expect(aborts).toHaveLength(1);
    expect(aborts[0]).toMatchObject({ code: "E_CANCELLED" });

    const after = await cluster.status();
    expect(after.requests.failed - before.failed).toBe(3);
    expect(after.requests.active).toBe(0);
    expect(after.nodes[0]).toMatchObject({ crashes: 0, restarts: 0, inFlight: 0 });
    expect(await stayer.request({ id: "e", handler: "echo", payload: "still served" })).toMatchObject({ ok: true, result: "still served" });
  });
});

describe("cluster.close()", () => {
  let cluster: Cluster | null = null;
  afterEach(async () => {
    await cluster?.close();
    cluster = null;
  });

  async function start(options: { threads: number; drainTimeoutMs?: number }) {
    cluster = await createCluster({ handlers: HANDLERS, logLevel: "silent", ...options });
    const { port } = await cluster.listen({ port: 0 });
    return { cluster, port, client: await sockets.open(port) };
  }

  it("lets in-flight requests finish, refuses new ones with E_SHUTTING_DOWN, then resolves", async () => {
    const { cluster, port, client } = await start({ threads: 2 });
    client.send({ id: "a", handler: "sleep", payload: { ms: 300 } }, { id: "b", handler: "sleep", payload: { ms: 300 } });
    await client.ping();
    const closing = cluster.close();

    expect(await client.request({ id: "late", handler: "echo", payload: 1 })).toMatchObject({
      ok: false,
      error: { code: "E_SHUTTING_DOWN" },
    });
    await expect(cluster.run("echo", 1)).rejects.toBeInstanceOf(ShuttingDownError);
    expect(cluster.draining).toBe(true);

    const [a, b] = await Promise.all([client.waitForId("a"), client.waitForId("b")]);
    expect(a).toMatchObject({ ok: true, result: { slept: 300 } });
    expect(b).toMatchObject({ ok: true, result: { slept: 300 } });
    await closing;
    await client.closed;
    await expect(NdjsonSocket.connect(port)).rejects.toMatchObject({ code: "ECONNREFUSED" });
    const status = await cluster.status();
    expect(status.nodes.map((n) => n.state)).toEqual(["stopped", "stopped"]);
    expect(status.requests.active).toBe(0);
  });

  it("answers E_SHUTTING_DOWN to what outlives drainTimeoutMs, before the connection goes", async () => {
    const { cluster, client } = await start({ threads: 1, drainTimeoutMs: 100 });
    client.send({ id: "forever", handler: "sleep", payload: { ms: 60_000 } });
    await client.ping();
    await cluster.close();
    await client.closed;
    expect(client.replies.find((r) => r.id === "forever")).toMatchObject({ ok: false, error: { code: "E_SHUTTING_DOWN" } });
  });

  it("can be called twice and resolves both times", async () => {
    const { cluster } = await start({ threads: 1 });
    await Promise.all([cluster.close(), cluster.close()]);
    await expect(cluster.close()).resolves.toBeUndefined();
  });
});

describe("crew start, as a real process", () => {
  let child: ChildProcess | null = null;
  afterEach(() => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    child = null;
  });

  /** Starts `crew start` and resolves with its TCP port, read from the "listening" log line. */
  async function crewStart(args: string[]): Promise<{ proc: ChildProcess; port: number; exited: Promise<number | null> }> {
    const proc = spawn(process.execPath, ["bin/crew.js", "start", ...args], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
    child = proc;
    const exited = once(proc, "exit").then(([code]) => code as number | null);
    let stderr = "";
    proc.stderr!.on("data", (chunk: Buffer) => (stderr += chunk));
    const lines = createInterface({ input: proc.stdout! });
    const listening = new Promise<number>((resolve, reject) => {
      lines.on("line", (line) => {
        const entry = JSON.parse(line) as { msg?: string; port?: number };
        if (entry.msg === "listening") resolve(entry.port!);
      });
      exited.then((code) => reject(new Error(`crew start exited with ${code} before listening: ${stderr}`)));
    });
    return { proc, port: await listening, exited };
  }

  it("on SIGTERM finishes the request in flight, then exits 0", async () => {
    const { proc, port, exited } = await crewStart(["--port", "0", "--http-port", "0", "--threads", "1"]);
    const client = await sockets.open(port);
    client.send({ id: "inflight", handler: "sleep", payload: { ms: 300 } });
    await client.ping();
    proc.kill("SIGTERM");
    expect(await client.waitForId("inflight")).toMatchObject({ ok: true, result: { slept: 300 }, meta: { node: "t0" } });
    expect(await exited).toBe(0);
  });
});

describe("listen() and close()", () => {
  it("refuses listen() once close() has begun", async () => {
    const cluster = await createCluster({ handlers: HANDLERS, threads: 1, logLevel: "silent" });
    const closed = cluster.close();
    await expect(cluster.listen({ port: 0 })).rejects.toBeInstanceOf(ShuttingDownError);
    await closed;
  });

  it("closes a listener that finished starting after close() began, instead of leaving it open", async () => {
    const cluster = await createCluster({ handlers: HANDLERS, threads: 1, logLevel: "silent" });
    const listening = cluster.listen({ port: 0, httpPort: 0 });
    const closed = cluster.close();
    await expect(listening).rejects.toBeInstanceOf(ShuttingDownError);
    await closed;
  });
});
