/**
 * The runtime end to end: both kinds of node serving .js, .mjs and .ts handlers,
 * thousands of pipelined requests over several connections each answered exactly
 * once, and the in-process path (cluster.run / cluster.call) through the same dispatcher.
 */
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { CancelledError, type Cluster, createCluster, CrewError, HandlerError, TimeoutError, UnknownHandlerError } from "crew";
import { type Id, SocketPool } from "./helpers/ndjson-socket.js";

const HANDLERS = fileURLToPath(new URL("./fixtures/runtime/handlers", import.meta.url));
const MODULE_KINDS = ["js", "mjs", "ts"] as const;

const sockets = new SocketPool();
afterEach(() => sockets.closeAll());

/** Runs where-js, where-mjs and where-ts once each over TCP; returns their replies. */
async function whereEach(port: number) {
  const c = await sockets.open(port);
  MODULE_KINDS.forEach((ext) => c.send({ id: ext, handler: `where-${ext}`, payload: { from: ext } }));
  const replies = await c.waitForReplies(MODULE_KINDS.length);
  return Object.fromEntries(replies.map((r) => [r.id, r])) as Record<(typeof MODULE_KINDS)[number], (typeof replies)[number]>;
}

describe.each([
  { kind: "thread", options: { threads: 1 }, node: "t0" },
  { kind: "process", options: { processes: 1 }, node: "p0" },
] as const)("a cluster of one $kind node", ({ kind, options, node }) => {
  let cluster: Cluster;
  let port: number;
  beforeAll(async () => {
    cluster = await createCluster({ handlers: HANDLERS, ...options, logLevel: "silent" });
    ({ port } = await cluster.listen({ port: 0 }));
  });
  afterAll(() => cluster?.close());

  it(`runs .js, .mjs and .ts handlers on its ${kind} node`, async () => {
    const replies = await whereEach(port);
    for (const ext of MODULE_KINDS) {
      expect(replies[ext]).toMatchObject({ ok: true, result: { ext, node, kind, payload: { from: ext } }, meta: { node } });
    }
    const status = await cluster.status();
    expect(status.nodes.map((n) => [n.id, n.kind, n.state])).toEqual([[node, kind, "up"]]);
  });

  it(`answers E_HANDLER from a ${kind} node without losing it`, async () => {
    const c = await sockets.open(port);
    c.send({ id: 1, handler: "crash", payload: { mode: "throw" } }, { id: 2, handler: "echo", payload: "still here" });
    await c.waitForReplies(2);
    expect(c.replies.find((r) => r.id === 1)).toMatchObject({ ok: false, error: { code: "E_HANDLER" } });
    expect(c.replies.find((r) => r.id === 2)).toMatchObject({ ok: true, result: "still here", meta: { node } });
    const [status] = (await cluster.status()).nodes;
    expect(status).toMatchObject({ crashes: 0, restarts: 0 });
  });
});

describe("a mixed cluster (one thread node, one process node)", () => {
  let cluster: Cluster;
  let port: number;
  beforeAll(async () => {
    cluster = await createCluster({ handlers: HANDLERS, threads: 1, processes: 1, logLevel: "silent" });
    ({ port } = await cluster.listen({ port: 0 }));
  });
  afterAll(() => cluster?.close());

  it("serves on both kinds: two requests at once land on t0 and p0", async () => {
    const c = await sockets.open(port);
    // Each node runs one request at a time, so the second cannot join the first.
    c.send({ id: "a", handler: "sleep", payload: { ms: 200 } }, { id: "b", handler: "sleep", payload: { ms: 200 } });
    const replies = await c.waitForReplies(2);
    expect(replies.every((r) => r.ok)).toBe(true);
    expect(replies.map((r) => r.meta!.node).sort()).toEqual(["p0", "t0"]);
  });

  it("runs an isolation: process handler only on the process node", async () => {
    const c = await sockets.open(port);
    for (let i = 0; i < 6; i++) c.send({ id: i, handler: "isolated" });
    const replies = await c.waitForReplies(6);
    for (const r of replies) expect(r).toMatchObject({ ok: true, result: { node: "p0", kind: "process" }, meta: { node: "p0" } });
  });

  it("answers 5000 pipelined requests over 4 connections, each id exactly once with its own payload", async () => {
    const connections = 4;
    const perConnection = 1250;
    const clients = await Promise.all(Array.from({ length: connections }, () => sockets.open(port)));
    const idOf = (c: number, i: number): Id => (i % 2 === 0 ? i : `c${c}-${i}`);
    clients.forEach((client, c) => {
      const frames = Array.from({ length: perConnection }, (_, i) => ({ id: idOf(c, i), handler: "echo", payload: { c, i } }));
      client.send(...frames);
    });
    const all = await Promise.all(clients.map((client) => client.waitForReplies(perConnection)));
    const nodes = new Set<string>();
    clients.forEach((client, c) => {
      const replies = all[c]!;
      const byId = new Map<Id, unknown>();
      replies.forEach((r) => {
        expect(byId.has(r.id), `id ${JSON.stringify(r.id)} answered twice`).toBe(false);
        byId.set(r.id, r.result);
        expect(r.ok).toBe(true);
        nodes.add(r.meta!.node!);
      });
      for (let i = 0; i < perConnection; i++) expect(byId.get(idOf(c, i))).toEqual({ c, i });
      expect(client.replies).toHaveLength(perConnection);
    });
    // Matched by id, not position: with two nodes racing, replies may come out of order.
    expect([...nodes].sort()).toEqual(["p0", "t0"]);
    const { requests } = await cluster.status();
    expect(requests.active).toBe(0);
  });
});

describe("the in-process path (cluster.run and cluster.call)", () => {
  let cluster: Cluster;
  beforeAll(async () => {
    cluster = await createCluster({ handlers: HANDLERS, threads: 1, logLevel: "silent" });
  });
  afterAll(() => cluster?.close());

  it("run resolves with the handler's result", async () => {
    await expect(cluster.run("echo", { a: [1, 2] })).resolves.toEqual({ a: [1, 2] });
    await expect(cluster.run("where-ts", 5)).resolves.toEqual({ ext: "ts", node: "t0", kind: "thread", payload: 5 });
  });

  it("run rejects with the coded error class and the reply's meta", async () => {
    const unknown = await cluster.run("nope").catch((err: unknown) => err);
    expect(unknown).toBeInstanceOf(UnknownHandlerError);
    expect(unknown).toBeInstanceOf(CrewError);
    expect(unknown).toMatchObject({ code: "E_UNKNOWN_HANDLER", meta: { node: null, attempts: 0 } });

    const thrown = await cluster.run("crash", { mode: "throw" }).catch((err: unknown) => err);
    expect(thrown).toBeInstanceOf(HandlerError);
    expect(thrown).toMatchObject({ code: "E_HANDLER", message: "crash: the handler threw", meta: { node: "t0", attempts: 1 } });

    const late = await cluster.run("sleep", { ms: 60_000 }, { timeoutMs: 50 }).catch((err: unknown) => err);
    expect(late).toBeInstanceOf(TimeoutError);
  });

  it("call resolves with the whole reply, result or error, and meta", async () => {
    const ok = await cluster.call("echo", "hi");
    expect(ok).toMatchObject({ ok: true, result: "hi", meta: { node: "t0", attempts: 1 } });
    const bad = await cluster.call("crash", { mode: "throw" });
    expect(bad).toMatchObject({ ok: false, error: { code: "E_HANDLER", message: "crash: the handler threw" } });
  });

  it("an AbortSignal cancels a running request with E_CANCELLED, and the node is free after", async () => {
    const controller = new AbortController();
    const running = cluster.run("sleep", { ms: 60_000 }, { signal: controller.signal }).catch((err: unknown) => err);
    controller.abort();
    const err = await running;
    expect(err).toBeInstanceOf(CancelledError);
    expect(err).toMatchObject({ code: "E_CANCELLED" });
    // The sleep honoured its signal: the one node is free for the next request.
    await expect(cluster.run("echo", "next")).resolves.toBe("next");
    expect((await cluster.status()).nodes[0]).toMatchObject({ crashes: 0, inFlight: 0 });
  });

  it("an already aborted signal cancels before the request runs", async () => {
    const reply = await cluster.call("echo", 1, { signal: AbortSignal.abort() });
    expect(reply).toMatchObject({ ok: false, error: { code: "E_CANCELLED" } });
  });
});
