/**
 * Every way a node can die, on every kind of node it applies to, in thread-only,
 * process-only and mixed clusters: the request resumes on a healthy node from the last
 * checkpoint stored before the crash, returns the right total after exactly 2 attempts,
 * and the cluster keeps serving on every node.
 *
 * The steps fixture sums 0..5, awaiting a checkpoint after every step, and dies on its
 * first attempt right after checkpoint { i: 3 } was acknowledged: the retry must start
 * at 3 and still return 15.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type LogLine, allUp, nodeIds, nodesThatServe, startCluster, sumBelow, type TestCluster } from "./helpers/cluster.js";

interface Kind {
  mode: string;
  /** What the primary's "node crashed" line must say about how the node ended. */
  ended: (line: LogLine) => void;
}

const exitedWith = (code: number) => (line: LogLine) => expect(line).toMatchObject({ code, signal: null, reason: `exited with code ${code}` });
const killedBy = (signal: string) => (line: LogLine) => expect(line).toMatchObject({ code: null, signal, reason: `killed by ${signal}` });

// The crash fixture exits with code 7; an uncaught error ends a Node process with code 1.
const THREAD_KINDS: Kind[] = [
  { mode: "exit", ended: exitedWith(7) },
  { mode: "uncaught", ended: (l) => expect(l.reason).toMatch(/^uncaught: .*uncaught exception/) },
  { mode: "unhandled", ended: (l) => expect(l.reason).toMatch(/^uncaught: .*unhandled rejection/) },
  { mode: "oom", ended: (l) => expect(l.reason).toBe("out of memory") },
];

const PROCESS_KINDS: Kind[] = [
  { mode: "exit", ended: exitedWith(7) },
  { mode: "uncaught", ended: exitedWith(1) },
  { mode: "unhandled", ended: exitedWith(1) },
  // V8 aborts a process over --max-old-space-size: the primary saw its report on stderr.
  { mode: "oom", ended: (l) => expect(l).toMatchObject({ code: null, signal: "SIGABRT", reason: "out of memory" }) },
  { mode: "sigkill", ended: killedBy("SIGKILL") },
  { mode: "sigsegv", ended: killedBy("SIGSEGV") },
  // Frozen, not dead: the primary sees it stopped for frozenNodeMs and kills it.
  { mode: "sigstop", ended: (l) => expect(l).toMatchObject({ signal: "SIGKILL", reason: expect.stringMatching(/^stopped \(SIGSTOP\) for over 100 ms/) }) },
  // The node's entry exits as soon as its channel closes…
  { mode: "disconnect", ended: exitedWith(0) },
  // …and one that lingers without it is killed by the primary.
  { mode: "disconnect-linger", ended: (l) => expect(l).toMatchObject({ signal: "SIGKILL", reason: "IPC channel lost" }) },
];

// Each crashing request kills a node that answered nothing in its life, which the
// supervisor backs off from (crash-loop.test.ts covers that): keep the delays short here.
const FAST_RESTARTS = { nodeMemoryMb: 64, restartBackoffMs: 10, restartBackoffMaxMs: 40, frozenNodeMs: 100 };

const N = 6;
const CRASH_AT = 3;

/** Runs one crashing request and checks how it recovered; resolves with the crash line. */
async function crashAndResume(t: TestCluster, handler: string, kind: Kind): Promise<{ crash: LogLine; node: string }> {
  await allUp(t);
  const from = t.logs.lines.length;
  const reply = await t.cluster.call(handler, { n: N, crash: { mode: kind.mode, at: CRASH_AT } });

  expect(reply).toMatchObject({ ok: true, result: { total: sumBelow(N), resumedFrom: CRASH_AT, attempt: 2 }, meta: { attempts: 2 } });
  const result = (reply as { result: { requestId: string; node: string } }).result;
  const [crash, ...more] = t.logs.find("node crashed", {}, from);
  expect(more).toEqual([]);
  kind.ended(crash!);
  expect(t.logs.find("retrying request on another node", {}, from)).toEqual([
    expect.objectContaining({ requestId: result.requestId, node: crash!.node, attempt: 1, resumeFrom: true }),
  ]);
  return { crash: crash!, node: result.node };
}

describe.each([
  { shape: "thread-only", options: { threads: 2 }, kinds: THREAD_KINDS },
  { shape: "process-only", options: { processes: 2 }, kinds: PROCESS_KINDS },
])("$shape cluster", ({ options, kinds }) => {
  let t: TestCluster;
  beforeAll(async () => {
    t = await startCluster({ ...options, ...FAST_RESTARTS });
  });
  afterAll(() => t?.close());

  it.each(kinds)("$mode: resumes from the last checkpoint on another node", async (kind) => {
    const retries = (await t.cluster.status()).requests.retries;
    const { crash, node } = await crashAndResume(t, "steps", kind);
    // With a second node up, the retry does not wait for the dead one to come back.
    expect(node).not.toBe(crash.node);
    expect((await t.cluster.status()).requests.retries).toBe(retries + 1);
  });

  it("still serves on every node, each replaced as often as it crashed", async () => {
    expect(await nodesThatServe(t)).toEqual(nodeIds(t.cluster));
    const status = await t.cluster.status();
    expect(status.nodes.reduce((sum, n) => sum + n.crashes, 0)).toBe(kinds.length);
    for (const n of status.nodes) expect(n.restarts).toBe(n.crashes);
    expect(status.requests).toMatchObject({ active: 0, retries: kinds.length, failed: 0 });
  });
});

describe("mixed cluster (one thread node, one process node)", () => {
  let t: TestCluster;
  beforeAll(async () => {
    t = await startCluster({ threads: 1, processes: 1, ...FAST_RESTARTS });
  });
  afterAll(() => t?.close());

  it.each(THREAD_KINDS)("$mode on the thread node: the retry resumes on the process node", async (kind) => {
    // steps-thread-first prefers a thread; when t0 dies, p0 is the one node up.
    const { crash, node } = await crashAndResume(t, "steps-thread-first", kind);
    expect(crash).toMatchObject({ node: "t0", kind: "thread" });
    expect(node).toBe("p0");
  });

  it.each(PROCESS_KINDS)("$mode on the process node: the retry waits for its replacement", async (kind) => {
    // steps-process may only run on p0, so the retry runs on the new p0.
    const { crash, node } = await crashAndResume(t, "steps-process", kind);
    expect(crash).toMatchObject({ node: "p0", kind: "process" });
    expect(node).toBe("p0");
  });

  it("still serves on both nodes", async () => {
    expect(await nodesThatServe(t)).toEqual(["p0", "t0"]);
    expect((await t.cluster.status()).requests).toMatchObject({ active: 0, failed: 0 });
  });
});
