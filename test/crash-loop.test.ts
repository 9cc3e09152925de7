/**
 * Crash loops: a node that keeps dying before it answers anything is restarted after
 * exponentially growing delays, capped, and at once again as soon as it has answered a
 * request. The delays are asserted as the supervisor logs them ("node restarting",
 * delayMs), not measured. A handler module that fails to load stops the cluster from
 * starting at all, naming the file.
 */
import { describe, expect, it } from "vitest";
import { createCluster, HandlerLoadError } from "crew";
import { allUp, RECOVERY_HANDLERS, startCluster, sumBelow, withCluster } from "./helpers/cluster.js";

const BACKOFF = { restartBackoffMs: 100, restartBackoffMaxMs: 400 };

describe.each([
  { shape: "thread node", options: { threads: 1 } },
  { shape: "process node", options: { processes: 1 } },
])("a $shape that keeps dying", ({ options }) => {
  it("restarts after delays that double up to the cap, and at once after it has answered", async () => {
    await withCluster({ ...options, ...BACKOFF, maxAttempts: 4 }, async (t) => {
      const { cluster, logs } = t;
      const delays = (from: number) => logs.find("node restarting", {}, from).map((l) => [l.delayMs, l.earlyDeaths]);

      // A poison request kills each new life of the one node before it answers anything.
      let from = logs.lines.length;
      const poison = await cluster.call("steps", { n: 1, crash: { mode: "exit", at: 0, on: "every" } });
      expect(poison).toMatchObject({ ok: false, error: { code: "E_CRASHED" }, meta: { attempts: 4 } });
      expect(delays(from)).toEqual([
        [100, 1],
        [200, 2],
        [400, 3],
        [400, 4], // capped at restartBackoffMaxMs
      ]);

      // Once the node has answered a request, it counts as healthy: its next death
      // restarts it at once, and only a life that answers nothing backs off again.
      await allUp(t);
      expect(await cluster.call("nap", { ms: 0 })).toMatchObject({ ok: true });
      from = logs.lines.length;
      const twice = await cluster.call("steps", { n: 4, crash: { mode: "exit", at: 2, on: [1, 2] } });
      expect(twice).toMatchObject({ ok: true, result: { total: sumBelow(4), resumedFrom: 2, attempt: 3 }, meta: { attempts: 3 } });
      expect(delays(from)).toEqual([
        [0, 0],
        [100, 1],
      ]);
      expect((await cluster.status()).nodes[0]).toMatchObject({ crashes: 6, restarts: 6, state: "up" });
    });
  });
});

describe("closing the cluster while a node restarts", () => {
  it.each([{ threads: 1 }, { processes: 1 }])("stops that node without counting a crash (%o)", async (options) => {
    const t = await startCluster(options);
    const [node] = t.cluster.nodes;
    const from = t.logs.lines.length;
    try {
      expect(t.cluster.killNode(node!.id)).toBe(true);
      await t.logs.waitFor("node restarting", { node: node!.id }, from);
      // No event marks the start of the new life: poll, one turn of the loop at a time.
      while (node!.state !== "starting") await new Promise((resolve) => setImmediate(resolve));
    } finally {
      await t.close();
    }
    expect(t.logs.find("node crashed", {}, from)).toHaveLength(1);
    expect(node).toMatchObject({ state: "stopped", crashes: 1 });
  });
});

describe("a handler module that fails to load", () => {
  it.each([{ threads: 1 }, { processes: 1 }])("makes createCluster reject naming the file (%o)", async (options) => {
    const start = createCluster({ handlers: `${RECOVERY_HANDLERS}/broken`, logLevel: "silent", ...options });
    const error = await start.catch((err: unknown) => err);
    expect(error).toBeInstanceOf(HandlerLoadError);
    expect(error).toMatchObject({ code: "E_HANDLER_LOAD" });
    expect((error as Error).message).toMatch(/broken\/explodes\.js: .*explodes on import/);
  });
});
