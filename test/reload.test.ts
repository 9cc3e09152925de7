/**
 * Zero-downtime reload (issue 14): under continuous load over TCP and HTTP no reply
 * fails and every node runs the new code afterwards; a folder that no longer loads leaves
 * the old code serving and names the file; a request whose node crashes during a reload
 * runs again on a new node; added handlers are offered and deleted ones withdrawn.
 */
import { readFileSync } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import { type Cluster, type ClusterOptions, createCluster, HandlerLoadError } from "crew";
import { Client } from "../dist/protocol/client.js";
import { Gate, LogCapture, RECOVERY_HANDLERS } from "./helpers/cluster.js";
import { HandlerFolder } from "./helpers/handler-folder.js";
import { keepLoaded } from "./helpers/load-loop.js";

let folder: HandlerFolder;
let cluster: Cluster;
let logs: LogCapture;

async function start(options: ClusterOptions): Promise<{ port: number; httpPort: number }> {
  folder = new HandlerFolder(RECOVERY_HANDLERS, ["gate.js"]);
  folder.writeVersion("version", 1);
  logs = new LogCapture();
  cluster = await createCluster({ handlers: folder.dir, drainTimeoutMs: 1000, logger: logs.logger, balancer: "round-robin", ...options });
  const info = await cluster.listen({ port: 0, httpPort: 0 });
  return { port: info.port, httpPort: info.httpPort! };
}

afterEach(async () => {
  await cluster?.close();
  folder?.dispose();
});

type VersionReply = { v: number; node: string };

describe.each([
  ["threads", { threads: 2, processes: 0 }],
  ["processes", { threads: 0, processes: 2 }],
])("reload with %s under load", (_kind, nodes) => {
  it("fails no request over TCP and HTTP, and every node runs the new code afterwards", async () => {
    const { port, httpPort } = await start(nodes);
    const client = new Client({ port });
    const before = cluster.nodes.map((n) => n.id);
    const tcp = keepLoaded(6, async () => {
      const reply = await client.call("version", {});
      return reply.ok ? null : `TCP ${JSON.stringify(reply.error)}`;
    });
    const http = keepLoaded(3, async () => {
      const res = await fetch(`http://127.0.0.1:${httpPort}/v1/run/version`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
      return res.ok ? (await res.text(), null) : `HTTP ${res.status}: ${await res.text()}`;
    });
    // The load is flowing before the reload starts.
    await logs.waitFor("node up");
    while (tcp.ok < 20 || http.ok < 5) await client.call("version", {});

    folder.writeVersion("version", 2);
    const done = await cluster.reload("test");
    const afterReload = { tcp: tcp.ok, http: http.ok };
    // And it keeps flowing after the reload: a few more requests on the new nodes.
    while (tcp.ok < afterReload.tcp + 20 || http.ok < afterReload.http + 5) await client.call("version", {});
    await Promise.all([tcp.stop(), http.stop()]);

    expect(tcp.failed).toEqual([]);
    expect(http.failed).toEqual([]);
    expect(done.changed).toEqual(["version"]);
    expect(done.replaced.map((r) => r.from)).toEqual(before);
    const fresh = done.replaced.map((r) => r.to);
    expect(fresh.every((id) => !before.includes(id))).toBe(true);
    expect(cluster.nodes.map((n) => n.id).sort()).toEqual([...fresh].sort());
    // Round-robin: 2 × N requests visit every node; each answers with the new code and version.
    const seen = new Set<string>();
    for (let i = 0; i < 2 * fresh.length; i++) {
      const reply = await client.call("version", {});
      expect(reply).toMatchObject({ ok: true, result: { v: 2 }, meta: { version: done.versions.version } });
      seen.add((reply as { result: VersionReply }).result.node);
    }
    expect([...seen].sort()).toEqual([...fresh].sort());
    expect(logs.find("reload done", { reason: "test" })).toHaveLength(1);
    await client.close();
  });
});

describe("reload", () => {
  it("stops at a folder that no longer loads: the old code serves, the error names the file", async () => {
    await start({ threads: 2 });
    const before = cluster.nodes.map((n) => n.id);
    folder.writeVersion("version", 2);
    folder.write("bad.js", "export default function (payload) { return payload +; }\n");
    const failure = await cluster.reload("test").then(
      () => null,
      (err: unknown) => err,
    );
    expect(failure).toBeInstanceOf(HandlerLoadError);
    expect((failure as Error).message).toContain(folder.path("bad.js"));
    expect(cluster.nodes.map((n) => n.id)).toEqual(before);
    expect(await cluster.run("version")).toMatchObject({ v: 1 });
    expect(logs.find("reload failed: the old handlers keep serving")).toHaveLength(1);

    // POST /v1/reload answers the same error; once the file is fixed, the reload goes through.
    const { httpPort } = await cluster.listen({ port: 0, httpPort: 0 }).then((i) => ({ httpPort: i.httpPort! }));
    const res = await fetch(`http://127.0.0.1:${httpPort}/v1/reload`, { method: "POST" });
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe("E_HANDLER_LOAD");
    expect(body.error.message).toContain("bad.js");
    folder.remove("bad.js");
    const ok = await fetch(`http://127.0.0.1:${httpPort}/v1/reload`, { method: "POST" });
    expect(ok.status).toBe(200);
    expect(((await ok.json()) as { reloaded: { changed: string[] } }).reloaded.changed).toEqual(["version"]);
    expect(await cluster.run("version")).toMatchObject({ v: 2 });
  });

  it("offers new handlers and withdraws deleted ones", async () => {
    await start({ threads: 1 });
    folder.writeVersion("fresh", 1);
    folder.remove("version.js");
    const done = await cluster.reload("test");
    expect(done.added).toEqual(["fresh"]);
    expect(done.removed).toEqual(["version"]);
    expect(await cluster.run("fresh")).toMatchObject({ v: 1 });
    expect(await cluster.call("version")).toMatchObject({ ok: false, error: { code: "E_UNKNOWN_HANDLER" } });
    expect(cluster.handlers.map((h) => h.name)).toContain("fresh");
    expect(cluster.handlers.map((h) => h.name)).not.toContain("version");
  });

  it("retries a request whose retiring node crashes on a new node, with the new code", async () => {
    await start({ threads: 0, processes: 1 });
    const gate = await Gate.open();
    const old = cluster.nodes[0]!;
    const held = cluster.call("gate", { port: gate.port });
    expect((await gate.arrival()).node).toBe(old.id);

    folder.write("gate.js", `${readFixture("gate.js")}\n// edited: a new version\n`);
    const reloading = cluster.reload("test");
    await logs.waitFor("node retiring", { node: old.id });
    const pid = (await cluster.status()).nodes.find((n) => n.id === old.id)!.pid!;
    process.kill(pid, "SIGKILL");
    // The request runs again, on the new node: the reload finishes meanwhile.
    const second = await gate.arrival();
    const done = await reloading;
    expect(second.node).toBe(done.replaced[0]!.to);
    expect(second.attempt).toBe(2);
    second.open("after the crash");
    const reply = await held;
    expect(reply).toMatchObject({ ok: true, result: { node: done.replaced[0]!.to, attempt: 2, said: "after the crash" }, meta: { version: done.versions.gate } });
    expect(done.changed).toEqual(["gate"]);
    await gate.close();
  });
});

function readFixture(file: string): string {
  return readFileSync(`${RECOVERY_HANDLERS}/${file}`, "utf8");
}
