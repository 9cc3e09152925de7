/**
 * Payloads a node cannot be sent: nested past the serialiser's stack (a ~10 KB frame or
 * body is enough), or not cloneable (embedding API). Each once ended the primary from a
 * microtask; now only that request fails, with E_BAD_REQUEST, and the cluster serves on.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BadRequestError, type Cluster, createCluster } from "crew";
import { NdjsonSocket, SocketPool } from "./helpers/ndjson-socket.js";

/** A JSON text that JSON.parse accepts but that no structured clone or stringify survives. */
function nested(depth: number): string {
  return "[".repeat(depth) + "]".repeat(depth);
}

describe.each([
  // Threads in the primary take structured clones (a function cannot be cloned); processes,
  // and threads hosted in a child process (the default), take JSON (a BigInt cannot be
  // serialised; a function would just be left out, as JSON does).
  { kind: "thread", nodes: { threads: 1 }, unsendable: () => ({ n: 1n }) },
  { kind: "thread in the primary", nodes: { threads: 1, threadHost: "primary" as const }, unsendable: () => ({ f: () => 1 }) },
  { kind: "process", nodes: { processes: 1 }, unsendable: () => ({ n: 1n }) },
])("on a $kind node", ({ nodes, unsendable }) => {
  let cluster: Cluster;
  let port: number;
  let httpPort: number | null;
  const sockets = new SocketPool();
  beforeAll(async () => {
    cluster = await createCluster({ handlers: "workers", ...nodes, logLevel: "silent" });
    ({ port, httpPort } = await cluster.listen({ port: 0, httpPort: 0 }));
  });
  afterAll(async () => {
    await sockets.closeAll();
    await cluster?.close();
  });

  it("answers a deeply nested TCP payload E_BAD_REQUEST and keeps serving", async () => {
    const c: NdjsonSocket = await sockets.open(port);
    await c.write(`{"id":1,"handler":"echo","payload":${nested(20_000)}}\n{"id":2,"handler":"echo","payload":"after"}\n`);
    const bad = await c.waitForId(1);
    expect(bad).toMatchObject({ ok: false, error: { code: "E_BAD_REQUEST" } });
    expect(bad.error!.message).toMatch(/cannot be sent to a node/);
    expect(await c.waitForId(2)).toMatchObject({ ok: true, result: "after" });
    expect((await cluster.status()).requests.active).toBe(0);
  });

  it("names the field, not the payload, when another field of the frame nests too deep", async () => {
    const c: NdjsonSocket = await sockets.open(port);
    await c.write(`{"id":3,"handler":"echo","payload":1,"key":${nested(20_000)}}\n`);
    const bad = await c.waitForId(3);
    expect(bad).toMatchObject({ ok: false, error: { code: "E_BAD_REQUEST", message: 'field "key" of the frame: nested deeper than 2048' } });
  });

  it("answers a deeply nested HTTP body 400 and keeps serving", async () => {
    const res = await fetch(`http://127.0.0.1:${httpPort}/v1/run/echo`, { method: "POST", headers: { "content-type": "application/json" }, body: nested(20_000) });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("E_BAD_REQUEST");
    expect(await cluster.run("echo", 7)).toBe(7);
  });

  it("rejects a payload the node cannot be sent from cluster.run with BadRequestError", async () => {
    const other = cluster.run("echo", "sent in the same batch");
    await expect(cluster.run("echo", unsendable())).rejects.toBeInstanceOf(BadRequestError);
    expect(await other).toBe("sent in the same batch");
  });
});
