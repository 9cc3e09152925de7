/**
 * A frozen node is a hung node: SIGSTOP sent from outside to the thread host leaves its
 * threads unable to answer, and without a watch their requests would wait for their
 * deadlines. The primary sees the host stopped for frozenNodeMs, kills it, and the
 * request runs again on a new thread node and answers once. (A process node that stops
 * itself is one of the ways to die in recovery-kinds.test.ts.)
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Gate, nodeIds, nodesThatServe, startCluster, type TestCluster } from "./helpers/cluster.js";

describe("the thread host stopped with SIGSTOP", () => {
  let t: TestCluster;
  let gate: Gate;
  beforeAll(async () => {
    gate = await Gate.open();
    t = await startCluster({ threads: 2, frozenNodeMs: 100, restartBackoffMs: 10 });
  });
  afterAll(async () => {
    await t?.close();
    await gate?.close();
  });

  it("is killed, and its request runs again on a new thread node and answers once", async () => {
    const from = t.logs.lines.length;
    const reply = t.cluster.call("gate", { port: gate.port });
    const first = await gate.arrival();
    const host = (await t.cluster.status()).nodes.find((n) => n.id === first.node)!.pid!;
    process.kill(host, "SIGSTOP");

    const crashes = await t.logs.waitForCount(2, "node crashed", {}, from);
    for (const crash of crashes) {
      expect(crash).toMatchObject({ kind: "thread", signal: "SIGKILL", reason: expect.stringMatching(/^thread host stopped \(SIGSTOP\) for over 100 ms/) });
    }
    expect(t.logs.find("node process stopped from outside: killing it, its requests are retried", { pid: host }, from)).toHaveLength(1);

    const second = await gate.arrival();
    expect(second).toMatchObject({ requestId: first.requestId, attempt: 2 });
    second.open("after the thaw");
    expect(await reply).toMatchObject({ ok: true, result: { attempt: 2, said: "after the thaw" }, meta: { attempts: 2 } });

    expect(await nodesThatServe(t)).toEqual(nodeIds(t.cluster));
    const status = await t.cluster.status();
    expect(status.nodes.map((n) => n.pid).includes(host)).toBe(false);
    expect(status.requests).toMatchObject({ active: 0, failed: 0, retries: 1 });
  });
});
