/**
 * No handler's memory use can end the primary: thread nodes live in a host process, so
 * V8's fatal out-of-memory abort (nodejs/node#47224, one array filled by index) ends that
 * process and the request answers E_CRASHED, while the primary (this test's process)
 * serves on. And what a thread node logged just before it died reaches the log.
 */
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Cluster, createCluster } from "crew";
import { LogCapture } from "./helpers/cluster.js";

const HANDLERS = fileURLToPath(new URL("./fixtures/nodes/oom", import.meta.url));

describe("a thread node out of memory", () => {
  let cluster: Cluster;
  const logs = new LogCapture();
  beforeAll(async () => {
    cluster = await createCluster({ handlers: HANDLERS, threads: 2, nodeMemoryMb: 128, restartBackoffMs: 10, logger: logs.logger });
  });
  afterAll(() => cluster?.close());

  it("answers E_CRASHED and the primary lives on, serving on every thread node", async () => {
    const from = logs.lines.length;
    const reply = await cluster.call("fill");
    expect(reply).toMatchObject({ ok: false, error: { code: "E_CRASHED" }, meta: { attempts: 1 } });
    const crash = await logs.waitFor("node crashed", {}, from);
    expect(crash.reason).toMatch(/out of memory/);
    // V8's report went to the log as lines of its own, not raw into crew's output.
    const report = logs.lines.slice(from).find((l) => l.stream === "stderr" && /heap out of memory|Allocation failed/.test(l.msg));
    expect(report).toMatchObject({ level: 40, host: "threads" });
    const up = (id: string) => logs.waitFor("node up", { node: id }, from);
    await Promise.all([up("t0"), up("t1")]);
    const answers = await Promise.all([1, 2, 3, 4].map((n) => cluster.call("echo", n)));
    expect(answers.map((r) => r.ok)).toEqual([true, true, true, true]);
    expect(new Set(answers.map((r) => r.meta.node))).toEqual(new Set(["t0", "t1"]));
  });

  it("relays every line a thread node logged just before it died", async () => {
    const from = logs.lines.length;
    const reply = await cluster.call("parting");
    expect(reply).toMatchObject({ ok: false, error: { code: "E_CRASHED" } });
    await logs.waitFor("node crashed", {}, from);
    // The lines come through the host's stdout, the crash report through its IPC channel:
    // two pipes, either may be read first. Every line arrives.
    const lines = await logs.waitForCount(5, "parting words", {}, from);
    expect(lines.map((l) => l.line)).toEqual([1, 2, 3, 4, 5]);
    expect(lines[0]).toMatchObject({ handler: "parting", attempt: 1, requestId: expect.any(String), node: expect.stringMatching(/^t[01]$/) });
  });
});
