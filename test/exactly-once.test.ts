/**
 * Exactly one reply per request, over a raw TCP socket (the typed client would hide a
 * second reply), in the races that recovery opens: a node dying while its result is on
 * the way, a cancel racing a result, a deadline racing a crash. After each race the
 * cluster is left with nothing in flight: no active request, no queued one, no attempt
 * on a node, no timer.
 *
 * Which side wins each race is up to the machine; every outcome is allowed except a
 * second reply, a missing one, or something left behind.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { allUp, nodeIds, nodesThatServe, startCluster, type TestCluster } from "./helpers/cluster.js";
import { type NdjsonSocket, type ReplyFrame, SocketPool } from "./helpers/ndjson-socket.js";

const FAST_RESTARTS = { restartBackoffMs: 10, restartBackoffMaxMs: 40 };
const sockets = new SocketPool();
afterEach(() => sockets.closeAll());

/**
 * Timers keeping this process alive. An idle cluster has none (deadline, grace and
 * restart timers all end with their request or restart); the test runner may hold one
 * of its own for a moment (it throttles its progress reports with a 100 ms timer).
 */
const timers = () => process.getActiveResourcesInfo().filter((r) => r === "Timeout").length;
const RUNNER_TIMERS = 1;

/** Resolves with each id's replies once every id has at least one. */
async function repliesFor(socket: NdjsonSocket, ids: string[]): Promise<Map<string, ReplyFrame[]>> {
  const byId = () => {
    const map = new Map<string, ReplyFrame[]>(ids.map((id) => [id, []]));
    for (const r of socket.replies) map.get(r.id as string)?.push(r);
    return map;
  };
  return socket.until(() => ([...byId().values()].every((rs) => rs.length > 0) ? byId() : undefined), `replies to ${ids.length} requests`);
}

/**
 * Waits until nothing that could still produce a reply is pending, then checks that each
 * id got exactly one reply and the cluster holds nothing. Quiet means every node has
 * completed one more request: a node runs its attempts in order, and a life that is
 * about to die completes nothing, so by then every earlier attempt has ended and every
 * node death has been seen. A ping round trip then flushes any reply the primary wrote
 * before the pong.
 */
async function expectExactlyOnce(t: TestCluster, socket: NdjsonSocket, ids: string[]) {
  expect(await nodesThatServe(t)).toEqual(nodeIds(t.cluster));
  await socket.ping("quiet");
  const counts: Record<string, number> = {};
  for (const r of socket.replies) if (r.id !== "quiet") counts[String(r.id)] = (counts[String(r.id)] ?? 0) + 1;
  expect(counts).toEqual(Object.fromEntries(ids.map((id) => [id, 1])));
  const status = await t.cluster.status();
  expect(status.requests.active).toBe(0);
  expect(status.queue.length).toBe(0);
  expect(status.nodes.map((n) => n.inFlight)).toEqual(status.nodes.map(() => 0));
  expect(timers()).toBeLessThanOrEqual(RUNNER_TIMERS);
}

describe("exactly one reply", () => {
  let t: TestCluster;
  let port: number;
  beforeAll(async () => {
    t = await startCluster({ threads: 1, processes: 1, ...FAST_RESTARTS });
    ({ port } = await t.cluster.listen({ port: 0 }));
  });
  afterAll(() => t?.close());

  /** A fresh connection once every node is up, and where the primary's log stands. */
  const connect = async () => {
    await allUp(t);
    return { socket: await sockets.open(port), from: t.logs.lines.length };
  };

  it("when a node dies just as its result leaves it", async () => {
    const { socket } = await connect();
    const before = (await t.cluster.status()).requests.retries;
    const ids = Array.from({ length: 12 }, (_, i) => `d${i}`);
    // parting returns, then exits its node in the next turn, on its first attempt only.
    socket.send(...ids.map((id) => ({ id, handler: "parting", payload: { exitOn: [1] } })));
    const replies = await repliesFor(socket, ids);

    let retries = 0;
    for (const [, [reply]] of replies) {
      // Either the result got out, or it died with its node and a later attempt answered
      // (a retry may land on a node that is about to die for another request's first attempt).
      expect(reply).toMatchObject({ ok: true, result: { attempt: reply!.meta!.attempts } });
      retries += reply!.meta!.attempts - 1;
    }
    // Counted before anything else runs: the quick requests below may be retried too.
    expect((await t.cluster.status()).requests.retries - before).toBe(retries);
    // How many nodes died depends on how the races went, so there is no count to wait for.
    await expectExactlyOnce(t, socket, ids);
  });

  it("when a cancel races a result", async () => {
    const { socket, from } = await connect();
    // Half honour their abort signal (nap), half ignore it and answer anyway (steps).
    const ids = Array.from({ length: 40 }, (_, i) => `c${i}`);
    const run = (id: string, i: number) => (i % 2 ? { id, handler: "nap", payload: { ms: 1 } } : { id, handler: "steps", payload: { n: 3 } });
    const cancel = (id: string) => ({ op: "cancel", id });
    // The first few are cancelled in the same write, the rest as soon as one answers.
    socket.send(...ids.map(run), ...ids.slice(0, 4).map(cancel));
    await socket.until(() => socket.replies.find((r) => r.ok));
    socket.send(...ids.map(cancel));
    const replies = await repliesFor(socket, ids);

    const codes = [...replies.values()].map(([r]) => (r!.ok ? "ok" : r!.error!.code));
    // The reply that set off the cancels is a result. The first four were cancelled in the
    // same read as they arrived, two of them already running on a node.
    expect(new Set(codes)).toEqual(new Set(["ok", "E_CANCELLED"]));
    expect(codes.slice(0, 4)).toEqual(Array(4).fill("E_CANCELLED"));
    await expectExactlyOnce(t, socket, ids);
    // Handlers that let go on abort, or finish anyway, within the grace keep their nodes.
    expect(t.logs.find("node crashed", {}, from)).toEqual([]);
  });

  it("when a deadline races a crash", async () => {
    const { socket, from } = await connect();
    const ids = Array.from({ length: 12 }, (_, i) => `x${i}`);
    // Every attempt dies at once; deadlines from 1 to 12 ms land before, between and after.
    socket.send(...ids.map((id, i) => ({ id, handler: "steps", payload: { n: 1, crash: { mode: "exit", at: 0, on: "every" } }, timeoutMs: i + 1 })));
    const replies = await repliesFor(socket, ids);

    let attempts = 0;
    for (const [, [reply]] of replies) {
      expect(["E_TIMEOUT", "E_CRASHED"]).toContain(reply!.error?.code);
      attempts += reply!.meta!.attempts;
    }
    await expectExactlyOnce(t, socket, ids);
    // Nodes died of these attempts only (an attempt sent ahead to a busy node may count
    // in meta.attempts and never run, so a request's attempts may exceed the deaths).
    const deaths = t.logs.find("node crashed", {}, from).length;
    expect(deaths).toBeGreaterThan(0);
    expect(deaths).toBeLessThanOrEqual(attempts);
  });
});
