/**
 * A thread node's shared slots name the attempts it was running when it died, which is what
 * a crash charges (compute-node.ts). Attempt ids grow for the cluster's life: past 2^31 an
 * Int32 slot wrapped, the dead thread's attempt was no longer recognised, and a request that
 * killed its node went uncharged, to kill the next one. A real thread, a real crash.
 */
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import type { ExitInfo } from "../dist/nodes/transport.js";
import { startThreadNode } from "./helpers/thread-node.js";

const STEPS = fileURLToPath(new URL("./fixtures/recovery/steps.js", import.meta.url));

describe("a thread node's slots", () => {
  it.each([7, 2 ** 31 + 7, 2 ** 40 + 7])("name attempt %d as running when its thread dies", async (a) => {
    let exit!: (info: ExitInfo) => void;
    const exited = new Promise<ExitInfo>((resolve) => (exit = resolve));
    const transport = await startThreadNode(
      { steps: STEPS },
      (msgs, node) => {
        // The handler saves a checkpoint before each step and waits until it is held.
        for (const m of msgs) if (m.t === "ckpt") node.post([{ t: "ckpt-ack", a: m.a, seq: m.seq }]);
      },
      (info) => exit(info),
    );
    transport.post([{ t: "run", a, requestId: "r1", handler: "steps", payload: { n: 2, crash: { mode: "exit", at: 1 } }, attempt: 1, resumeFrom: null }]);
    expect(await exited).toMatchObject({ code: 7 });
    expect(transport.runningNow()).toEqual([a]);
  });
});
