/**
 * A thread node that finishes an attempt reads what the primary sent meanwhile before its
 * result leaves: the attempt held ahead for it (lookahead) starts at once, and its `started`
 * leaves in the same batch as the result. Read later, from the thread's event loop, it cost
 * a batch of its own: one more wake-up of the thread host and of the primary per request.
 * A real thread, blocked synchronously (block.js) while the held attempt arrives.
 */
import { fileURLToPath } from "node:url";
import { expect, it } from "vitest";
import { changed } from "./helpers/atomics.js";
import { createThreadTransport } from "../dist/nodes/thread-transport.js";
import type { FromNode, NodeInit } from "../dist/nodes/messages.js";

const BLOCK = fileURLToPath(new URL("./fixtures/lookahead/block.js", import.meta.url));

it("a held attempt that arrived while the node was busy starts with the last result, in one batch", async () => {
  const init: NodeInit = { nodeId: "t9", kind: "thread", handlers: { block: BLOCK }, logLevel: "silent", maxCheckpointBytes: 1 << 20, maxResultBytes: 1 << 20, concurrency: 1 };
  const runs = new Int32Array(new SharedArrayBuffer(4 * 2));
  const gate = new Int32Array(new SharedArrayBuffer(4));
  const batches: FromNode[][] = [];
  let ready!: () => void;
  let answered!: () => void;
  const up = new Promise<void>((resolve) => (ready = resolve));
  const bothAnswered = new Promise<void>((resolve) => (answered = resolve));
  const transport = createThreadTransport({
    init,
    memoryMb: 64,
    events: {
      onMessages: (msgs: FromNode[]) => {
        if (msgs.some((m) => m.t === "ready")) return ready();
        batches.push(msgs);
        if (batches.flat().filter((m) => m.t === "result").length === 2) answered();
      },
      onExit: () => {},
    },
  });
  try {
    await up;
    const run = (a: number, held: boolean) => ({ t: "run" as const, a, requestId: `r${a}`, handler: "block", attempt: 1, resumeFrom: null, ...(held ? { held: true as const } : {}) });
    transport.post([{ ...run(1, false), payload: { runs: runs.buffer, idx: 0, gate: gate.buffer } }]);
    // Attempt 1 has started and blocks its thread: attempt 2 arrives while it runs.
    await changed(runs, 0, 0);
    transport.post([{ ...run(2, true), payload: { runs: runs.buffer, idx: 1 } }]);
    Atomics.store(gate, 0, 1);
    Atomics.notify(gate, 0);
    await bothAnswered;

    expect(Array.from(runs)).toEqual([1, 1]);
    const first = batches.find((b) => b.some((m) => m.t === "result" && m.a === 1));
    expect(first?.map((m) => [m.t, "a" in m ? m.a : null])).toEqual([
      ["result", 1],
      ["started", 2],
    ]);
  } finally {
    transport.kill();
  }
});
