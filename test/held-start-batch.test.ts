/**
 * A thread node that finishes an attempt reads what the primary sent meanwhile before its
 * result leaves: the attempt held ahead for it (lookahead) starts at once, and its `started`
 * leaves in the same batch as the result. Read later, from the thread's event loop, it cost
 * a batch of its own: one more wake-up of the thread host and of the primary per request.
 * An attempt sent ahead without lookahead starts only once that result is out. A real
 * thread, blocked synchronously (block.js) while the next attempt arrives.
 */
import { fileURLToPath } from "node:url";
import { afterEach, beforeEach, expect, it } from "vitest";
import { changed } from "./helpers/atomics.js";
import type { FromNode } from "../dist/nodes/messages.js";
import { startThreadNode } from "./helpers/thread-node.js";

const BLOCK = fileURLToPath(new URL("./fixtures/lookahead/block.js", import.meta.url));

/** A real thread node running block.js; records every batch it sends after `ready`. */
async function blockNode() {
  const batches: FromNode[][] = [];
  const waiters: Array<() => void> = [];
  const transport = await startThreadNode({ block: BLOCK }, (msgs) => {
    batches.push(msgs);
    for (const wake of waiters.splice(0)) wake();
  });
  /** Resolves once attempt `a`'s result has arrived. */
  const resultOf = async (a: number): Promise<void> => {
    while (!batches.flat().some((m) => m.t === "result" && m.a === a)) await new Promise<void>((wake) => waiters.push(wake));
  };
  return { transport, batches, resultOf };
}

const runs = new Int32Array(new SharedArrayBuffer(4 * 2));
const gates = [0, 1].map(() => new Int32Array(new SharedArrayBuffer(4)));
const run = (a: number, idx: number, { held = false, gate = false } = {}) => ({
  t: "run" as const,
  a,
  requestId: `r${a}`,
  handler: "block",
  attempt: 1,
  resumeFrom: null,
  payload: { runs: runs.buffer, idx, ...(gate ? { gate: gates[idx]!.buffer } : {}) },
  ...(held ? { held: true as const } : {}),
});
const open = (idx: number) => {
  Atomics.store(gates[idx]!, 0, 1);
  Atomics.notify(gates[idx]!, 0);
};
beforeEach(() => {
  runs.fill(0);
  for (const gate of gates) gate.fill(0);
});
// A test that failed leaves no thread blocked.
afterEach(() => gates.forEach((_, idx) => open(idx)));

it("a held attempt that arrived while the node was busy starts with the last result, in one batch", async () => {
  const { transport, batches, resultOf } = await blockNode();
  try {
    transport.post([run(1, 0, { gate: true })]);
    // Attempt 1 has started and blocks its thread: attempt 2 arrives while it runs.
    await changed(runs, 0, 0);
    transport.post([run(2, 1, { held: true })]);
    open(0);
    await resultOf(2);

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

it("an attempt sent ahead that arrived while the node was busy starts only once the last result is out", async () => {
  // Else that result waits behind the whole next attempt (past its deadline), and is lost
  // if the next one kills the thread: the finished request then runs again.
  const { transport, resultOf } = await blockNode();
  try {
    transport.post([run(1, 0, { gate: true })]);
    await changed(runs, 0, 0);
    transport.post([run(2, 1, { gate: true })]);
    open(0);
    // Attempt 2 now blocks the thread until its gate opens: attempt 1's result must be out already.
    await changed(runs, 1, 0);
    await resultOf(1);
    open(1);
    await resultOf(2);
    expect(Array.from(runs)).toEqual([1, 1]);
  } finally {
    transport.kill();
  }
}, 10_000);
