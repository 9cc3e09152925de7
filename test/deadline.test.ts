/**
 * Deadlines: a request past its timeoutMs answers E_TIMEOUT and its ctx.signal aborts. A
 * handler that ignores the signal (a busy loop that never yields) has its node killed
 * after killGraceMs and replaced; requests on other nodes are untouched, and every node
 * serves afterwards. A handler that honours the signal keeps its node.
 *
 * A gate request (see helpers/cluster.ts) holds the other node busy for exactly as long
 * as each test needs, so nothing here depends on how long anything takes.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { Gate, nodeIds, nodesThatServe, startCluster, type TestCluster, withCluster } from "./helpers/cluster.js";

const KILLING = "handler ignored its abort signal: killing its node";

describe.each([
  { shape: "two thread nodes", options: { threads: 2 }, single: { threads: 1 }, killed: { code: null, signal: null, reason: "terminated" } },
  { shape: "two process nodes", options: { processes: 2 }, single: { processes: 1 }, killed: { code: null, signal: "SIGKILL", reason: "killed by SIGKILL" } },
])("a cluster of $shape", ({ options, single, killed }) => {
  let t: TestCluster;
  let gate: Gate;
  beforeAll(async () => {
    // Lookahead off: a request past the busy nodes waits in the primary's queue, as these
    // tests say (lookahead.test.ts covers deadlines of requests held ahead in a node).
    t = await startCluster({ ...options, killGraceMs: 50, nodeLookahead: 0 });
  });
  afterAll(() => t?.close());
  beforeEach(async () => {
    gate = await Gate.open();
  });
  afterEach(() => gate.close());

  const restarts = async () => Object.fromEntries((await t.cluster.status()).nodes.map((n) => [n.id, n.restarts]));

  it("times out a busy loop, kills and replaces only its node, and serves on every node after", async () => {
    const { cluster, logs } = t;
    const other = cluster.call("gate", { port: gate.port });
    const held = await gate.arrival();
    const before = await restarts();
    const { retries } = (await cluster.status()).requests;
    const from = logs.lines.length;

    const reply = await cluster.call("steps", { n: 1, crash: { mode: "loop", at: 0 } }, { timeoutMs: 100 });
    expect(reply).toMatchObject({ ok: false, error: { code: "E_TIMEOUT", message: "deadline of 100 ms passed" }, meta: { attempts: 1 } });
    const looped = reply.meta.node!;
    expect(looped).not.toBe(held.node);

    expect(await logs.waitFor(KILLING, {}, from)).toMatchObject({ node: looped, graceMs: 50, reason: "E_TIMEOUT" });
    expect(await logs.waitFor("node crashed", {}, from)).toMatchObject({ node: looped, toRetry: 1, ...killed });
    await logs.waitFor("node up", { node: looped, restarts: before[looped]! + 1 }, from);

    // The request on the other node ran on, on its first attempt.
    held.open("still here");
    expect(await other).toMatchObject({ ok: true, result: { node: held.node, attempt: 1, said: "still here" }, meta: { attempts: 1 } });
    expect(await restarts()).toEqual({ ...before, [looped]: before[looped]! + 1 });
    // A request that timed out is answered: killing its node does not retry it.
    expect((await cluster.status()).requests.retries).toBe(retries);
    expect(logs.find(KILLING, {}, from)).toHaveLength(1);
    expect(await nodesThatServe(t)).toEqual(nodeIds(cluster));
  });

  it("aborts ctx.signal of a handler that honours it, and keeps its node", async () => {
    // One node: the next request runs after the nap on the same node, and its result
    // comes after the nap's, so had the grace timer killed the node, it would show.
    await withCluster({ ...single, killGraceMs: 50 }, async ({ cluster, logs }) => {
      const reply = await cluster.call("nap", { ms: 600_000 }, { timeoutMs: 50 });
      expect(reply).toMatchObject({ ok: false, error: { code: "E_TIMEOUT" }, meta: { attempts: 1 } });
      const next = await cluster.call("nap", { ms: 0 });
      expect(next).toMatchObject({ ok: true, result: { attempt: 1 }, meta: { attempts: 1 } });
      expect((await cluster.status()).nodes[0]).toMatchObject({ restarts: 0, crashes: 0 });
      expect(logs.find(KILLING)).toEqual([]);
    });
  });

  it("times out a request still waiting for a node, without touching any node", async () => {
    const { cluster, logs } = t;
    const held = [cluster.call("gate", { port: gate.port }), cluster.call("gate", { port: gate.port })];
    const arrivals = [await gate.arrival(), await gate.arrival()];
    const before = await restarts();
    const from = logs.lines.length;

    const reply = await cluster.call("nap", { ms: 0 }, { timeoutMs: 20 });
    expect(reply).toMatchObject({ ok: false, error: { code: "E_TIMEOUT" }, meta: { attempts: 0, node: null } });

    for (const arrival of arrivals) arrival.open();
    for (const h of held) expect(await h).toMatchObject({ ok: true, meta: { attempts: 1 } });
    expect(await restarts()).toEqual(before);
    expect(logs.find(KILLING, {}, from)).toEqual([]);
    expect((await cluster.status()).requests.active).toBe(0);
  });
});
