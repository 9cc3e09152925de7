/**
 * The shared queue's scripts against a real redis-server the test starts: pull placement,
 * priority bands, the heartbeat that refreshes only what a host still holds, takeover by
 * one host per entry, fencing of stale writers, replies routed to the accepting host and
 * to joiners, idempotency across hosts, expiry of finished requests.
 */
import { Redis } from "ioredis";
import pino from "pino";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { Keys } from "../dist/store/redis/keys.js";
import { HostChannels } from "../dist/store/redis/host-channels.js";
import { SharedQueue, type StoredReply } from "../dist/store/redis/shared-queue.js";
import { persistenceWarnings } from "../dist/store/redis/connection.js";
import { TAKEOVER_SCANS } from "../dist/store/redis/scripts.js";
import { REDIS_SKIP, RedisServer } from "./helpers/redis-server.js";

const OK = (v: unknown): StoredReply => ({ ok: true, json: JSON.stringify(v), meta: { node: "t0", attempts: 1, ms: 1 } });
let n = 0;
const req = (priority = 0, extra: Record<string, unknown> = {}) => ({
  requestId: `q${++n}`,
  handler: "echo",
  payloadJson: JSON.stringify({ n }),
  priority,
  deadline: Date.now() + 60_000,
  ...extra,
});

describe.skipIf(REDIS_SKIP !== null)("redis shared queue", () => {
  let server: RedisServer;
  let redis: Redis;
  let keys: Keys;
  let a: SharedQueue;
  let b: SharedQueue;

  beforeAll(async () => {
    server = await RedisServer.start();
    redis = new Redis(server.url);
  });
  afterAll(async () => {
    redis?.disconnect();
    await server?.stop();
  });
  beforeEach(async () => {
    keys = new Keys(`t${++n}`);
    a = new SharedQueue(redis, keys, "a", { maxQueue: 1000, resultTtlMs: 60_000 });
    b = new SharedQueue(redis, keys, "b", { maxQueue: 1000, resultTtlMs: 60_000 });
    await a.ensureGroups();
    await b.ensureGroups();
  });

  it("keeps every key of a cluster under one hash tag", async () => {
    const r = req();
    await a.enqueue(r);
    const all = await redis.keys("*");
    const mine = all.filter((k) => k.includes(`{${keys.cluster}}`));
    expect(mine.length).toBeGreaterThan(1);
    for (const k of mine) expect(k.startsWith(`crew:{${keys.cluster}}:`)).toBe(true);
  });

  it("pulls only as many as asked, highest band first, FIFO within a band", async () => {
    const lo = req(-3), mid1 = req(0), hi = req(7), mid2 = req(0);
    for (const r of [lo, mid1, hi, mid2]) expect(await a.enqueue(r)).toEqual({ kind: "queued" });
    const first = await b.pull(2);
    expect(first.map((c) => c.requestId)).toEqual([hi.requestId, mid1.requestId]);
    expect(first[0]).toMatchObject({ attempt: 1, acceptedBy: "a", handler: "echo", payloadJson: hi.payloadJson, checkpoint: null });
    const rest = await a.pull(10);
    expect(rest.map((c) => c.requestId)).toEqual([mid2.requestId, lo.requestId]);
    expect(await b.pull(10)).toEqual([]);
  });

  it("refuses past maxQueue entries", async () => {
    const small = new SharedQueue(redis, keys, "a", { maxQueue: 2, resultTtlMs: 1000 });
    expect((await small.enqueue(req())).kind).toBe("queued");
    expect((await small.enqueue(req())).kind).toBe("queued");
    expect((await small.enqueue(req())).kind).toBe("full");
  });

  it("heartbeat refreshes only what the host still holds: it never steals back a takeover", async () => {
    const r = req();
    await a.enqueue(r);
    const [mine] = await a.pull(1);
    // b takes it over once it has been idle for 0 ms (as if a had stopped heartbeating).
    const [taken] = await b.takeover(5, 0);
    expect(taken).toMatchObject({ requestId: r.requestId, attempt: 2, previousHolder: "a" });
    expect(Number(taken!.fence)).toBeGreaterThan(Number(mine!.fence));
    // a's heartbeat reports it lost and leaves b's claim alone.
    expect(await a.heartbeat([mine!], { nodes: [] }, 3000)).toEqual([r.requestId]);
    const pending = (await redis.xpending(keys.queue("mid"), "hosts", "-", "+", 10)) as Array<[string, string, number, number]>;
    expect(pending.map((p) => p[1])).toEqual(["b"]);
    // b's own heartbeat keeps it.
    expect(await b.heartbeat([taken!], { nodes: [] }, 3000)).toEqual([]);
  });

  it("a live host's heartbeat keeps its entries from being taken over", async () => {
    const r = req();
    await a.enqueue(r);
    const [mine] = await a.pull(1);
    // Let the entry age 30 ms, so a refresh shows (polled, as below: Redis's clock says).
    while ((await idleOf(keys, mine!.entryId)) < 30) await new Promise((resolve) => setTimeout(resolve, 10));
    // Refreshed, its idle time counts from the heartbeat on, so it is at most the time
    // since the heartbeat was sent (+1: both clocks in whole ms); not refreshed, it would
    // be 30 ms more. (A fixed bound on it failed when a loaded machine stalled the round trip.)
    const sent = performance.now();
    await a.heartbeat([mine!], {}, 3000);
    const idleAfter = await idleOf(keys, mine!.entryId);
    expect(idleAfter).toBeLessThanOrEqual(Math.ceil(performance.now() - sent) + 1);
    expect(await b.takeover(5, 10_000)).toEqual([]);
  });

  it("one taker per dead host's entry", async () => {
    for (let i = 0; i < 20; i++) await a.enqueue(req());
    await a.pull(20);
    const hosts = ["b", "c", "d", "e"].map((h) => new SharedQueue(redis, keys, h, { maxQueue: 1000, resultTtlMs: 1000 }));
    // Wait until every entry has been idle 50 ms (a's heartbeat stopped), then race.
    while (Math.min(...(await pendingIdle(keys))) < 50) await new Promise((resolve) => setTimeout(resolve, 10));
    const taken = (await Promise.all(hosts.map((q) => q.takeover(20, 50)))).flat();
    expect(new Set(taken.map((t) => t.requestId)).size).toBe(taken.length);
    expect(taken.length).toBe(20);
  });

  it("a takeover walks a bounded stretch of the pending list, and the next one goes on from there", async () => {
    // A live host's entries, more than one takeover looks at with one free slot, then a dead host's.
    const live = TAKEOVER_SCANS * 10 + 10;
    for (let i = 0; i < live; i++) await a.enqueue(req());
    const mine = await a.pull(live);
    const c = new SharedQueue(redis, keys, "c", { maxQueue: 1000, resultTtlMs: 60_000 });
    const dead = req();
    await a.enqueue(dead);
    expect(await c.pull(1)).toMatchObject([{ requestId: dead.requestId }]);
    const idleDead = async () => {
      const pending = (await redis.xpending(keys.queue("mid"), "hosts", "-", "+", 1, "c")) as Array<[string]>;
      return idleOf(keys, pending[0]![0]);
    };
    while ((await idleDead()) < 50) await new Promise((resolve) => setTimeout(resolve, 10));
    await a.heartbeat(mine, {}, 3000); // a is alive: its entries are not idle
    expect(await b.takeover(1, 50)).toEqual([]);
    await a.heartbeat(mine, {}, 3000);
    expect(await b.takeover(1, 50)).toMatchObject([{ requestId: dead.requestId, previousHolder: "c" }]);
  });

  it("fences a stale holder: its checkpoints and result are refused, the holder's are kept", async () => {
    const r = req();
    await a.enqueue(r);
    const [old] = await a.pull(1);
    expect(await a.checkpoint(r.requestId, old!.fence, '{"i":1}')).toBe(true);
    const [now] = await b.takeover(1, 0);
    expect(now!.checkpoint).toBe('{"i":1}');
    expect(await a.checkpoint(r.requestId, old!.fence, '{"i":99}')).toBe(false);
    expect(await b.checkpoint(r.requestId, now!.fence, '{"i":2}')).toBe(true);
    expect(await a.finish(r.requestId, old!.fence, OK("stale"), false)).toBe("fenced");
    expect(await b.finish(r.requestId, now!.fence, OK("fresh"), false)).toBe("answered");
    expect(await b.finish(r.requestId, now!.fence, OK("twice"), false)).toBe("already");
    const replies = await redis.xrange(keys.replies("a"), "-", "+");
    expect(replies.map(([, f]) => JSON.parse(f[3]!).json)).toEqual(['"fresh"']);
    // Answered: acknowledged and deleted from the queue, and the request key expires.
    expect(await redis.xlen(keys.queue("mid"))).toBe(0);
    expect(await redis.pttl(keys.request(r.requestId))).toBeGreaterThan(0);
  });

  it("a cancel from the accepting host wins over a late result and tells the holder", async () => {
    const r = req();
    await a.enqueue(r);
    const [held] = await b.pull(1);
    const sub = new Redis(server.url);
    await sub.subscribe(keys.control("b"));
    const told = new Promise((resolve) => sub.once("message", (_c: string, m: string) => resolve(m)));
    expect(await a.finish(r.requestId, null, { ok: false, error: { code: "E_CANCELLED", message: "x" }, meta: { node: null, attempts: 0, ms: 0 } }, false)).toBe("answered");
    expect(await told).toBe(r.requestId);
    expect(await b.finish(r.requestId, held!.fence, OK("late"), false)).toBe("already");
    expect(await b.heartbeat([held!], {}, 3000)).toEqual([r.requestId]);
    sub.disconnect();
  });

  it("idempotency keys across hosts: join while running, replay once answered, conflict on another payload", async () => {
    const r = req(0, { idempotencyKey: "k1" });
    await a.enqueue(r);
    expect(await b.enqueue({ ...r, requestId: "other" })).toEqual({ kind: "join", requestId: r.requestId });
    expect((await b.enqueue({ ...r, requestId: "x", payloadJson: "{}" })).kind).toBe("conflict");
    const [held] = await a.pull(1);
    expect(await a.finish(r.requestId, held!.fence, OK(42), true)).toBe("answered");
    // The reply went to both hosts.
    expect(await redis.xlen(keys.replies("a"))).toBe(1);
    expect(await redis.xlen(keys.replies("b"))).toBe(1);
    const again = await b.enqueue({ ...r, requestId: "y" });
    expect(again).toMatchObject({ kind: "replay", requestId: r.requestId, reply: { ok: true, json: "42" } });
    const ttl = await redis.pttl(keys.request(r.requestId));
    expect(ttl).toBeGreaterThan(50_000);
  });

  it("delivers replies to the accepting host's channels, and lists live hosts", async () => {
    const got: Array<[string, StoredReply]> = [];
    const conns = { blocking: new Redis(server.url), cmd: redis, sub: new Redis(server.url) };
    let arrived!: () => void;
    const wait = new Promise<void>((resolve) => (arrived = resolve));
    const channels = new HostChannels(conns, keys, "a", { reply: (id, v) => (got.push([id, v]), arrived()), work: () => {}, abort: () => {} }, pino({ level: "silent" }));
    await channels.start();
    const r = req();
    await a.enqueue(r);
    const [held] = await b.pull(1);
    await b.heartbeat([held!], { nodes: ["t0"] }, 3000);
    await b.finish(r.requestId, held!.fence, OK("hi"), false);
    await wait;
    expect(got).toEqual([[r.requestId, OK("hi")]]);
    expect(await b.hosts()).toEqual([{ id: "b", lastSeen: expect.any(Number), info: { nodes: ["t0"] } }]);
    await channels.close();
    conns.sub.disconnect();
  });

  it("warns about Redis persistence that can lose acknowledged work", async () => {
    const warnings = await persistenceWarnings(redis);
    expect(warnings.some((w) => w.includes("appendonly no"))).toBe(true);
    await redis.config("SET", "maxmemory-policy", "allkeys-lru");
    expect((await persistenceWarnings(redis)).some((w) => w.includes("allkeys-lru"))).toBe(true);
    await redis.config("SET", "maxmemory-policy", "noeviction");
  });

  async function pendingIdle(k: Keys): Promise<number[]> {
    const p = (await redis.xpending(k.queue("mid"), "hosts", "-", "+", 1000)) as Array<[string, string, number, number]>;
    return p.map((e) => e[2]);
  }

  async function idleOf(k: Keys, id: string): Promise<number> {
    const p = (await redis.xpending(k.queue("mid"), "hosts", id, id, 1)) as Array<[string, string, number, number]>;
    return p[0]![2];
  }
});
