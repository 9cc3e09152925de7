/**
 * A thread node's shared slots name the attempts it was running when it died, which is what
 * a crash charges (compute-node.ts). Attempt ids grow for the cluster's life: past 2^31 an
 * Int32 slot wrapped, the dead thread's attempt was no longer recognised, and a request that
 * killed its node went uncharged, to kill the next one. A real thread, a real crash.
 */
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { createThreadTransport } from "../dist/nodes/thread-transport.js";
import type { ExitInfo } from "../dist/nodes/transport.js";
import type { FromNode, NodeInit } from "../dist/nodes/messages.js";

const STEPS = fileURLToPath(new URL("./fixtures/recovery/steps.js", import.meta.url));

describe("a thread node's slots", () => {
  it.each([7, 2 ** 31 + 7, 2 ** 40 + 7])("name attempt %d as running when its thread dies", async (a) => {
    const init: NodeInit = { nodeId: "t9", kind: "thread", handlers: { steps: STEPS }, logLevel: "silent", maxCheckpointBytes: 1 << 20, maxResultBytes: 1 << 20, concurrency: 1 };
    let ready!: () => void;
    let exit!: (info: ExitInfo) => void;
    const up = new Promise<void>((resolve) => (ready = resolve));
    const exited = new Promise<ExitInfo>((resolve) => (exit = resolve));
    const transport = createThreadTransport({
      init,
      memoryMb: 64,
      events: {
        onMessages: (msgs: FromNode[]) => {
          for (const m of msgs) {
            if (m.t === "ready") ready();
            // The handler saves a checkpoint before each step and waits until it is held.
            if (m.t === "ckpt") transport.post([{ t: "ckpt-ack", a: m.a, seq: m.seq }]);
          }
        },
        onExit: (info: ExitInfo) => exit(info),
      },
    });
    await up;
    transport.post([{ t: "run", a, requestId: "r1", handler: "steps", payload: { n: 2, crash: { mode: "exit", at: 1 } }, attempt: 1, resumeFrom: null }]);
    expect(await exited).toMatchObject({ code: 7 });
    expect(transport.runningNow()).toEqual([a]);
  });
});
