/**
 * Node pipelining: short requests sent ahead to a busy node. A request sent ahead and then
 * abandoned (deadline) must not get its node killed: the node's running request is healthy.
 * The thread is blocked synchronously (Atomics.wait on a SharedArrayBuffer) for exactly as
 * long as the test says: no timing is guessed.
 */
import { fileURLToPath } from "node:url";
import { afterEach, expect, it } from "vitest";
import { type Cluster, createCluster } from "crew";

const HANDLERS = fileURLToPath(new URL("./fixtures/pipelining", import.meta.url));
const clusters: Cluster[] = [];
afterEach(async () => {
  await Promise.all(clusters.splice(0).map((c) => c.close()));
});

/**
 * One try on a fresh cluster (the long request's run time would keep its handler from
 * being sent ahead again). Returns whether the short request was sent ahead to the busy
 * node; either way, it timed out without its node being killed or its running request lost.
 */
async function timeOutBehindLong(): Promise<boolean> {
  // killGraceMs 0: were the grace timer armed for the waiting request, it would fire on the
  // very next timers phase, which the test lets pass before releasing the long request.
  // threadHost "primary": the test holds the thread with memory it shares with it, which
  // only a thread in the test's own process can see. Lookahead off: a request not sent
  // ahead waits in the primary's queue rather than being held in the node.
  const cluster = await createCluster({ handlers: HANDLERS, threads: 1, threadHost: "primary", killGraceMs: 0, nodeLookahead: 0, logLevel: "silent" });
  clusters.push(cluster);
  const crashes: string[] = [];
  cluster.observe({ nodeCrashed: (node, info) => crashes.push(`${node.id}: ${info.reason}`) });
  for (let i = 0; i < 5; i++) expect(await cluster.run("block", { tag: `warm-${i}` })).toBe(`warm-${i}`);
  const sab = new SharedArrayBuffer(4);
  const long = cluster.call("block", { sab, tag: "long" });
  const short = cluster.call("block", { tag: "short" }, { timeoutMs: 20 });
  // Both went to the one node when the short one was sent ahead: it waits there, behind the blocked one.
  const sentAhead = cluster.nodes[0]!.inFlight === 2;
  expect(cluster.queueLength).toBe(sentAhead ? 0 : 1);

  const timedOut = await short;
  expect(timedOut).toMatchObject({ ok: false, error: { code: "E_TIMEOUT" }, meta: { attempts: sentAhead ? 1 : 0 } });
  // A 0 ms grace timer armed with that timeout would be due now: let the timers phase run.
  await new Promise((resolve) => setTimeout(resolve, 0));
  expect(cluster.nodes[0]!.state).toBe("up");

  // The long request has now run past the pipelining budget (a 20 ms deadline passed
  // meanwhile): nothing more goes ahead of it; a new request waits in the primary's queue.
  const third = cluster.call("block", { tag: "third" });
  expect(cluster.queueLength).toBe(1);

  Atomics.store(new Int32Array(sab), 0, 1);
  Atomics.notify(new Int32Array(sab), 0);
  expect(await long).toMatchObject({ ok: true, result: "long", meta: { attempts: 1, node: "t0" } });
  expect(await third).toMatchObject({ ok: true, result: "third", meta: { attempts: 1 } });
  expect(crashes).toEqual([]);
  // The timed-out request was dropped in the node, never run: it read the abort before
  // starting its next attempt. Answered there: 5 warm-ups, the long one and the third.
  expect(cluster.nodes[0]!.completed).toBe(7);
  return sentAhead;
}

it("never kills a node for a request that timed out waiting in it, and sends nothing ahead of a stalled one", async () => {
  // Whether the short request is sent ahead rests on wall-clock measures (placement.ts):
  // both run times under 1 ms, and the node busy for under 1 ms when it arrives. On a
  // loaded machine the scheduler can stretch either, and the short request then waits in
  // the primary's queue instead: that try is made again until one sends it ahead.
  let sentAhead = false;
  for (let tries = 1; !sentAhead && tries <= 10; tries++) sentAhead = await timeOutBehindLong();
  expect(sentAhead).toBe(true);
});
