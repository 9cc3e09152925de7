/**
 * Checkpoint and retry semantics: what `ctx.checkpoint` promises a handler, which
 * failures are retried and how often, and what the primary logs and counts about every
 * crash, restart and retry. (Every failure kind: recovery-kinds.test.ts.)
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { allUp, nodeIds, nodesThatServe, startCluster, sumBelow, type TestCluster, withCluster } from "./helpers/cluster.js";

const SHAPES = [
  { shape: "thread node", options: { threads: 1 } },
  { shape: "process node", options: { processes: 1 } },
];

describe.each(SHAPES)("ctx.checkpoint on a $shape", ({ options }) => {
  let t: TestCluster;
  beforeAll(async () => {
    t = await startCluster({ ...options, maxCheckpointBytes: 1024 });
  });
  afterAll(() => t?.close());

  it("gives ctx.resumeFrom undefined on a fresh start", async () => {
    const reply = await t.cluster.call("probe", { check: "resume" });
    expect(reply).toEqual({ ok: true, result: { attempt: 1, fresh: true }, meta: expect.objectContaining({ attempts: 1 }) });
  });

  // Each state is the last of a few, awaited in turn, after which the node dies at once:
  // the retry sees it only if the primary held it before `await` returned.
  it.each([
    { what: "an object", last: { step: 2, deep: { list: [1, "two", null, { three: 3 }] } } },
    { what: "an array", last: [1, [2, [3]]] },
    { what: "a string", last: "halfway" },
    { what: "zero", last: 0 },
    { what: "false", last: false },
    { what: "null (not undefined)", last: null },
  ])("resolves only once the primary holds the state: the retry resumes from $what", async ({ last }) => {
    const states = [{ step: 0 }, { step: 1 }, last];
    const reply = await t.cluster.call("probe", { check: "store-then-exit", states });
    expect(reply).toMatchObject({ ok: true, result: { attempt: 2, fresh: false }, meta: { attempts: 2 } });
    expect((reply as { result: { resumeFrom: unknown } }).result.resumeFrom).toStrictEqual(last);
  });

  it("refuses a state over maxCheckpointBytes inside the handler, which carries on", async () => {
    const crashes = (await t.cluster.status()).nodes[0]!.crashes;
    const reply = await t.cluster.call("probe", { check: "too-large", bytes: 2000 });
    expect(reply).toMatchObject({
      ok: true,
      result: {
        attempt: 1,
        refused: { name: "CheckpointTooLargeError", code: "E_CHECKPOINT_TOO_LARGE", message: expect.stringMatching(/over the limit of 1024 bytes/) },
        after: { stored: true },
      },
      meta: { attempts: 1 },
    });
    expect((await t.cluster.status()).nodes[0]!.crashes).toBe(crashes);
  });

  it("never stores a refused state: a retry resumes from the one before it", async () => {
    const reply = await t.cluster.call("probe", { check: "too-large", bytes: 2000, exitAfter: true });
    expect(reply).toMatchObject({ ok: true, result: { attempt: 2, resumeFrom: { kept: true } }, meta: { attempts: 2 } });
  });

  it("rejects a state that is not JSON with a TypeError that says so", async () => {
    const reply = await t.cluster.call("probe", { check: "not-json" });
    const notJson = { name: "TypeError", message: expect.stringMatching(/^checkpoint state must be JSON: .*BigInt/) };
    expect(reply).toMatchObject({
      ok: true,
      result: {
        bigint: notJson,
        cycle: { name: "TypeError", message: expect.stringMatching(/^checkpoint state must be JSON: .*circular/) },
        fn: { name: "TypeError", message: "checkpoint state must be a JSON value" },
        after: { stored: true },
      },
      meta: { attempts: 1 },
    });
  });
});

describe("handler errors and retry limits", () => {
  let t: TestCluster;
  beforeAll(async () => {
    t = await startCluster({ threads: 1, processes: 1 });
  });
  afterAll(() => t?.close());

  it.each(["throw", "reject"])("a handler that does %s answers E_HANDLER and is never retried", async (how) => {
    const reply = await t.cluster.call("fail", { how });
    const message = how === "throw" ? "fail: thrown on attempt 1" : "fail: rejected on attempt 1";
    expect(reply).toMatchObject({ ok: false, error: { code: "E_HANDLER", message }, meta: { attempts: 1 } });
  });

  it("a handler error after checkpoints is still the answer, not a reason to resume", async () => {
    const reply = await t.cluster.call("steps", { n: 6, crash: { mode: "throw", at: 3 } });
    expect(reply).toMatchObject({ ok: false, error: { code: "E_HANDLER", message: "crash: the handler threw" }, meta: { attempts: 1 } });
    const status = await t.cluster.status();
    expect(status.requests.retries).toBe(0);
    expect(status.nodes.map((n) => n.crashes)).toEqual([0, 0]);
  });

  it("a poison request ends in E_CRASHED after maxAttempts (default 3), each attempt resuming", async () => {
    // Dies on every attempt right after checkpoint { i: 2 }.
    const reply = await t.cluster.call("steps", { n: 4, crash: { mode: "exit", at: 2, on: "every" } });
    expect(reply).toMatchObject({ ok: false, error: { code: "E_CRASHED" }, meta: { attempts: 3 } });
    expect((reply as { error: { message: string } }).error.message).toMatch(/every attempt's node died \(3 attempts; last: node [tp]0 exited with code 7\)/);
    expect((await t.cluster.status()).requests.retries).toBe(2);
  });

  it("config.maxAttempts of a handler overrides the cluster's", async () => {
    const reply = await t.cluster.call("poison", {});
    expect(reply).toMatchObject({ ok: false, error: { code: "E_CRASHED" }, meta: { attempts: 2 } });
  });

  it("serves normally on every node after poison requests", async () => {
    expect(await nodesThatServe(t)).toEqual(["p0", "t0"]);
    const reply = await t.cluster.call("steps", { n: 10 });
    expect(reply).toMatchObject({ ok: true, result: { total: sumBelow(10), resumedFrom: null, attempt: 1 } });
  });
});

it("the maxAttempts option sets the default limit", async () => {
  await withCluster({ threads: 2, maxAttempts: 5, restartBackoffMs: 10 }, async ({ cluster }) => {
    const reply = await cluster.call("steps", { n: 1, crash: { mode: "exit", at: 0, on: "every" } });
    expect(reply).toMatchObject({ ok: false, error: { code: "E_CRASHED" }, meta: { attempts: 5 } });
    // A handler's own config.maxAttempts still wins.
    expect(await cluster.call("poison", {})).toMatchObject({ ok: false, meta: { attempts: 2 } });
  });
});

describe("blame", () => {
  it("a node killed by an attempt sent ahead to it spends that request's attempts, not its neighbour's", async () => {
    await withCluster({ threads: 1, restartBackoffMs: 10 }, async ({ cluster, logs }) => {
      // steps with n: 0 returns at once: measured that fast, it may be sent ahead to a
      // busy node (node pipelining), straight behind another request.
      for (let i = 0; i < 20; i++) await cluster.call("steps", { n: 0 });
      const from = logs.lines.length;
      const [fine, deadly] = await Promise.all([
        cluster.call("steps", { n: 0 }),
        cluster.call("steps", { n: 0, crash: { mode: "exit", at: 0, on: [1, 2] } }),
      ]);
      // The node died twice, both times of the second request, which then succeeded.
      expect(deadly).toMatchObject({ ok: true, result: { attempt: 3 }, meta: { attempts: 3 } });
      // The first may need a second attempt (its result can die with the node), not more.
      expect(fine).toMatchObject({ ok: true });
      const deadlyId = (deadly as { result: { requestId: string } }).result.requestId;
      const retried = logs.find("retrying request on another node", { requestId: deadlyId }, from);
      expect(retried.map((l) => l.attempt)).toEqual([1, 2]);
    });
  });
});

describe("every crash, restart and retry is logged and counted", () => {
  it.each(SHAPES.map((s) => ({ ...s, mode: s.options.threads ? "exit" : "sigkill" })))(
    "on a $shape, killed by $mode",
    async ({ options, mode }) => {
      await withCluster({ ...options, maxAttempts: 2 }, async (t) => {
        const { cluster, logs } = t;
        const up = logs.find("node up", { node: nodeIds(cluster)[0] })[0]!;
        const id = up.node as string;
        expect(up).toMatchObject({ restarts: 0 });
        expect(up.kind === "thread" ? up.threadId : up.pid).toEqual(expect.any(Number));

        const from = logs.lines.length;
        const reply = await cluster.call("steps", { n: 3, crash: { mode, at: 1, on: "every" } });
        expect(reply).toMatchObject({ ok: false, error: { code: "E_CRASHED" }, meta: { attempts: 2 } });

        const how = mode === "exit" ? { code: 7, signal: null } : { code: null, signal: "SIGKILL" };
        // Whichever life of the node died, the crash line names that thread or process.
        const crashes = logs.find("node crashed", {}, from);
        expect(crashes).toHaveLength(2);
        expect(crashes[0]).toMatchObject({ node: id, kind: up.kind, pid: up.pid, threadId: up.threadId, toRetry: 1, ...how });
        const secondLife = logs.find("node up", { node: id, restarts: 1 }, from)[0]!;
        expect(crashes[1]).toMatchObject({ node: id, pid: secondLife.pid, threadId: secondLife.threadId, ...how });
        expect(up.kind === "thread" ? secondLife.threadId : secondLife.pid).not.toBe(up.kind === "thread" ? up.threadId : up.pid);

        // The retry names the request and the attempt that failed; the final failure too.
        const retries = logs.find("retrying request on another node", {}, from);
        expect(retries).toEqual([expect.objectContaining({ node: id, attempt: 1, resumeFrom: true, requestId: expect.any(String) })]);
        const requestId = retries[0]!.requestId;
        expect(logs.find("request failed: every attempt's node died", {}, from)).toEqual([
          expect.objectContaining({ requestId, node: id, attempt: 2 }),
        ]);
        expect(logs.find("node restarting", { node: id }, from)).toHaveLength(2);

        await allUp(t);
        const status = await cluster.status();
        expect(status.nodes[0]).toMatchObject({ id, crashes: 2, restarts: 2, state: "up" });
        expect(status.nodes[0]!.lastExit).toBe(mode === "exit" ? "exited with code 7" : "killed by SIGKILL");
        expect(status.requests).toMatchObject({ retries: 1, failed: 1, active: 0 });
      });
    },
  );
});
