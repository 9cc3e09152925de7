/**
 * Chaos: hundreds of checkpointing requests over TCP while nodes of a mixed cluster are
 * killed at random. Kills are driven by replies, not by time (a random up node every
 * KILL_EVERY replies), so the run does the same amount of damage on a fast or a slow
 * machine. Every request must get exactly one reply, with the right total: zero lost,
 * zero duplicated, zero wrong.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { nodeIds, nodesThatServe, startCluster, sumBelow, type TestCluster } from "./helpers/cluster.js";
import { type NdjsonSocket, SocketPool } from "./helpers/ndjson-socket.js";

const REQUESTS = 300;
const KILL_EVERY = 20;
const STEPS = 40;
const CHECKPOINT_EVERY = 4;

let t: TestCluster;
const sockets = new SocketPool();
beforeAll(async () => {
  t = await startCluster({
    threads: 2,
    processes: 2,
    // Several attempts per node keep many requests in flight for each kill to hit.
    nodeConcurrency: 4,
    // A request can be unlucky more than twice in a row here; losing it is what we test
    // for, so the limit is out of the way.
    maxAttempts: 20,
    // Killed nodes come back fast, whether or not they answered anything before.
    restartBackoffMs: 10,
    restartBackoffMaxMs: 50,
  });
});
afterAll(async () => {
  await sockets.closeAll();
  await t?.close();
});

/**
 * Kills a random node that is up and not already dying (a killed node counts as up
 * until the primary has seen it exit); returns its id, or null when there is none.
 */
function killRandomNode(killed: string[], from: number): string | null {
  const dying = (id: string) => killed.filter((k) => k === id).length > t.logs.find("node crashed", { node: id }, from).length;
  const up = t.cluster.nodes.filter((n) => n.state === "up" && !dying(n.id));
  const victim = up[Math.floor(Math.random() * up.length)];
  return victim && t.cluster.killNode(victim.id) ? victim.id : null;
}

/** Resolves once every request id has a reply, killing a node every KILL_EVERY replies on the way. */
function runUnderFire(socket: NdjsonSocket, ids: number[], from: number): Promise<string[]> {
  const answered = new Set<unknown>();
  const killed: string[] = [];
  return socket.until(() => {
    for (const r of socket.replies) {
      if (answered.has(r.id)) continue;
      answered.add(r.id);
      if (answered.size % KILL_EVERY === 0 && answered.size < ids.length) {
        const id = killRandomNode(killed, from);
        if (id) killed.push(id);
      }
    }
    return answered.size >= ids.length ? killed : undefined;
  }, `replies to all ${ids.length} requests`);
}

it(`answers ${REQUESTS} checkpointed requests exactly once, correctly, while nodes are killed`, async () => {
  const { port } = await t.cluster.listen({ port: 0 });
  const socket = await sockets.open(port);
  const from = t.logs.lines.length;
  const ids = Array.from({ length: REQUESTS }, (_, i) => i);
  // Different lengths, so requests end (and nodes die) at different points of their work.
  const n = (id: number) => STEPS + (id % 7) * CHECKPOINT_EVERY;
  socket.send(...ids.map((id) => ({ id, handler: "steps", payload: { n: n(id), every: CHECKPOINT_EVERY } })));

  const killed = await runUnderFire(socket, ids, from);
  // Quiet: every kill seen, every node back and serving, and a ping flushes anything
  // the primary wrote before it.
  await t.logs.waitForCount(killed.length, "node crashed", {}, from);
  expect(await nodesThatServe(t)).toEqual(nodeIds(t.cluster));
  await socket.ping("quiet");

  const replies = socket.replies.filter((r) => r.id !== "quiet");
  expect(replies).toHaveLength(REQUESTS);
  expect(new Set(replies.map((r) => r.id)).size).toBe(REQUESTS);
  const wrong = replies.filter((r) => !r.ok || (r.result as { total: number }).total !== sumBelow(n(r.id as number)));
  expect(wrong).toEqual([]);

  // The chaos was real, and recovery resumed from checkpoints rather than from scratch.
  expect(killed.length).toBeGreaterThanOrEqual(REQUESTS / KILL_EVERY / 2);
  const resumed = replies.filter((r) => ((r.result as { resumedFrom: number | null }).resumedFrom ?? 0) > 0);
  expect(resumed.length).toBeGreaterThan(0);
  for (const r of resumed) expect((r.result as { resumedFrom: number }).resumedFrom % CHECKPOINT_EVERY).toBe(0);
  const status = await t.cluster.status();
  expect(status.requests).toMatchObject({ active: 0, failed: 0 });
  expect(status.requests.retries).toBeGreaterThanOrEqual(resumed.length);
  // Each retry resumed from its request's latest checkpoint: none was stored twice.
  expect(status.requests.checkpoints).toBe(ids.reduce((sum, id) => sum + n(id) / CHECKPOINT_EVERY, 0));
  expect(status.nodes.reduce((sum, node) => sum + node.crashes, 0)).toBe(killed.length);
  expect(t.logs.find("killing node on request", {}, from).map((l) => l.node)).toEqual(killed);
});
