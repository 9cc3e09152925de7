/**
 * Elastic nodes (issue 14): `threads: "MIN..MAX"` grows while requests wait longer than
 * scaleUpMs and shrinks after idleTimeoutMs, never past MAX nor below MIN; a node that
 * cannot start leaves the cluster serving with the nodes it has. Real load: gate requests
 * that hold their nodes until the test opens them; every wait is on a log line.
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import { afterEach, describe, expect, it } from "vitest";
import { type Cluster, createCluster } from "crew";
import { formatStatus } from "../dist/commands/status.js";
import { Gate, LogCapture, RECOVERY_HANDLERS } from "./helpers/cluster.js";
import { HandlerFolder } from "./helpers/handler-folder.js";

let folder: HandlerFolder;
let cluster: Cluster;
let logs: LogCapture;
let gate: Gate;

async function start(threads: string, idleTimeoutMs: number): Promise<void> {
  folder = new HandlerFolder(RECOVERY_HANDLERS, ["gate.js"]);
  folder.writeVersion("version", 1);
  logs = new LogCapture();
  gate = await Gate.open();
  cluster = await createCluster({ handlers: folder.dir, threads, scaleUpMs: 20, idleTimeoutMs, drainTimeoutMs: 1000, logger: logs.logger });
}

afterEach(async () => {
  await gate?.close();
  await cluster?.close();
  folder?.dispose();
});

describe("elastic thread nodes", () => {
  it("grow to MAX while requests wait, then shrink to MIN once idle", async () => {
    await start("1..3", 200);
    expect(cluster.nodes.map((n) => n.id)).toEqual(["t0"]);
    const replies = [0, 1, 2, 3].map(() => cluster.call("gate", { port: gate.port }));
    const held = [await gate.arrival(), await gate.arrival(), await gate.arrival()];
    // Three requests run on three nodes: two were added for them. The fourth waits, held
    // ahead in one of the busy nodes (lookahead): MAX is 3.
    expect(new Set(held.map((a) => a.node)).size).toBe(3);
    expect(logs.find("scaled up").map((l) => l.node)).toEqual(["t1", "t2"]);
    const status = await cluster.status();
    expect(status.scaling).toMatchObject({ threads: { now: 3, min: 1, max: 3 }, elastic: { scaleUpMs: 20, idleTimeoutMs: 200 } });
    expect(formatStatus(status)).toContain("threads 3 (1..3)");
    expect(cluster.queueLength).toBe(0);
    expect(status.nodes.map((n) => n.inFlight).sort()).toEqual([1, 1, 2]);

    held[0]!.open();
    const fourth = await gate.arrival();
    fourth.open();
    for (const a of held.slice(1)) a.open();
    for (const reply of await Promise.all(replies)) expect(reply.ok).toBe(true);
    expect(logs.find("scaled up")).toHaveLength(2);

    // Idle for idleTimeoutMs: two nodes stop, one stays (MIN).
    await logs.waitForCount(2, "node retired", { reason: "idle" });
    expect(logs.find("scaled down")).toHaveLength(2);
    expect(cluster.nodes).toHaveLength(1);
    expect((await cluster.status()).scaling.threads.now).toBe(1);
    // And it still serves, and grows again when needed.
    expect(await cluster.run("version")).toMatchObject({ v: 1 });
  });

  it("keeps serving with the nodes it has when a new node cannot start", async () => {
    await start("1..2", 30_000);
    const first = cluster.call("gate", { port: gate.port });
    const held = await gate.arrival();
    // A handler broken on disk (and not reloaded): a new node cannot load it.
    folder.write("version.js", "export default () => ({ v: 1 ;\n");
    const from = logs.lines.length;
    const waiting = cluster.call("gate", { port: gate.port });
    const failed = await logs.waitFor("scale up failed: serving with the nodes there are", {}, from);
    expect(failed.err).toContain(folder.path("version.js"));
    expect(cluster.nodes.map((n) => n.id)).toEqual(["t0"]);
    held.open();
    (await gate.arrival()).open();
    expect(await first).toMatchObject({ ok: true, result: { node: "t0" } });
    expect(await waiting).toMatchObject({ ok: true, result: { node: "t0" } });
  });
});

describe("node count options", () => {
  it("take MIN..MAX from createCluster and the CLI, and refuse a bad range naming the option", async () => {
    await expect(createCluster({ threads: "3..2", logLevel: "silent" })).rejects.toThrow(/threads must be a range MIN\.\.MAX/);
    await expect(createCluster({ processes: "1..x", logLevel: "silent" })).rejects.toThrow(/processes must be a number or a range/);
    const child = spawn(process.execPath, ["bin/crew.js", "start", "--threads", "2..4", "--processes", "1", "--print-config"], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d));
    await once(child, "close");
    expect(JSON.parse(out).options).toMatchObject({ threads: 2, maxThreads: 4, processes: 1, maxProcesses: 1, scaleUpMs: 100, idleTimeoutMs: 30_000 });
  });
});
