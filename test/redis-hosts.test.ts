/**
 * Several hosts, as real `crew start --redis` processes on one redis-server the test
 * starts: a request sent to a gateway runs on another host; a SIGKILLed host's long job
 * resumes elsewhere from its checkpoint and answers once; a SIGSTOPped host is fenced
 * when it thaws; a cancel crosses hosts; priority bands hold across hosts; Redis killed →
 * E_UNAVAILABLE at once, restarted → the hosts reconnect and held replies arrive.
 */
import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { formatStatus } from "../dist/commands/status.js";
import { Client } from "../dist/protocol/client.js";
import { Gate, type GateArrival } from "./helpers/cluster.js";
import { CrewHost } from "./helpers/crew-host.js";
import { NdjsonSocket } from "./helpers/ndjson-socket.js";
import { REDIS_SKIP, RedisServer } from "./helpers/redis-server.js";

describe.skipIf(REDIS_SKIP !== null)("several hosts on one Redis", () => {
  let server: RedisServer;
  let redis: Redis;
  let hosts: CrewHost[] = [];
  let sockets: NdjsonSocket[] = [];
  let gates: Gate[] = [];
  let n = 0;
  let cluster = "";

  beforeAll(async () => {
    // fsync always: a Redis killed and restarted keeps every acknowledged write.
    server = await RedisServer.start({ appendfsync: "always" });
    redis = new Redis(server.url, { maxRetriesPerRequest: null });
    redis.on("error", () => {}); // the test kills this server on purpose
  });
  afterAll(async () => {
    redis?.disconnect();
    await server?.stop();
  });
  afterEach(async () => {
    for (const s of sockets) s.socket.destroy();
    for (const h of hosts) h.signal("SIGCONT");
    await Promise.all(hosts.map((h) => h.kill()));
    await Promise.all(gates.map((g) => g.close()));
    hosts = [];
    sockets = [];
    gates = [];
  });

  async function start(id: string, threads: number, extra: string[] = []): Promise<CrewHost> {
    const host = await CrewHost.start(id, server.url, cluster, ["--threads", String(threads), "--processes", "0", ...extra]);
    hosts.push(host);
    return host;
  }

  async function client(host: CrewHost): Promise<NdjsonSocket> {
    const s = await NdjsonSocket.connect(host.port);
    sockets.push(s);
    return s;
  }

  /** A gate for gated-steps requests (fixtures/hosts/gated-steps.js), closed after the test. */
  async function openGate(): Promise<Gate> {
    const gate = await Gate.open();
    gates.push(gate);
    return gate;
  }

  /** The host that holds the request of an attempt parked at a gate (its holder in Redis). */
  async function hostOf(parked: GateArrival): Promise<CrewHost> {
    const owner = await redis.hget(`crew:{${cluster}}:r:${parked.requestId}`, "own");
    const host = hosts.find((h) => h.id === owner);
    if (!host) throw new Error(`no host of this test holds ${JSON.stringify(parked)} (holder: ${owner})`);
    return host;
  }

  /** Polls Redis until one request of this cluster has a checkpoint of at least `step`; returns its id and holder. */
  async function runningWithCheckpoint(step: number): Promise<{ id: string; owner: string }> {
    for (;;) {
      const keys = await redis.keys(`crew:{${cluster}}:r:*`);
      for (const key of keys) {
        const [ck, own] = await redis.hmget(key, "ck", "own");
        if (ck && (JSON.parse(ck) as { i: number }).i >= step) return { id: key.split(":r:")[1]!, owner: own! };
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  const begin = () => (cluster = `c${process.pid}x${++n}`);

  /**
   * A new cluster: gateway "a" (no nodes), a host with one thread per id in `workers`, a
   * client connected to a, and a gate for gated-steps requests.
   */
  async function gatewayAnd<const T extends readonly string[]>(...workers: T) {
    begin();
    const a = await start("a", 0);
    const started: CrewHost[] = [];
    for (const id of workers) started.push(await start(id, 1));
    return { a, workers: started as { [K in keyof T]: CrewHost }, s: await client(a), gate: await openGate() };
  }

  it("a request sent to a gateway host runs on another host's node; status lists every host", async () => {
    begin();
    const a = await start("a", 0);
    const b = await start("b", 1);
    const s = await client(a);
    const reply = await s.request({ id: 1, handler: "echo", payload: { hi: 1 } });
    expect(reply).toMatchObject({ ok: true, result: { hi: 1 }, meta: { host: "b", node: "t0", attempts: 1 } });
    await b.waitFor("listening");
    const status = (await (await fetch(`http://127.0.0.1:${a.httpPort}/v1/status`)).json()) as { host: string; hosts: Array<{ id: string; nodes: Array<{ id: string }> }> };
    expect(status.host).toBe("a");
    expect(status.hosts.map((h) => [h.id, h.nodes.map((x) => x.id)])).toEqual([["a", []], ["b", ["t0"]]]);
    // crew status shows the same list.
    const text = formatStatus(status as never);
    expect(text).toContain("hosts      2 in the cluster (this one: a)");
    expect(text).toMatch(/\* a {2}gateway \(no nodes\)/);
    expect(text).toMatch(/ {3}b {2}t0 up \d+ in flight/);
  });

  it("SIGKILL of the host running a checkpointing job: another host resumes it, the client on a third host gets one reply", async () => {
    const { workers: [b, c], s, gate } = await gatewayAnd("b", "c");
    const pending = s.request({ id: "long", handler: "gated-steps", payload: { steps: 12, ms: 50, hold: { port: gate.port, at: 3 } } });
    // Attempt 1 waits at the gate once its checkpoint { i: 3 } is kept: its host dies
    // mid-job however slow the machine, as the gate is never opened.
    const parked = await gate.arrival();
    expect(parked.attempt).toBe(1);
    const victim = await hostOf(parked);
    expect(victim === b || victim === c).toBe(true);
    const survivor = victim === b ? c : b;
    await victim.kill();
    const reply = await pending;
    expect(reply.ok).toBe(true);
    const result = reply.result as { done: number; resumedAt: number; attempt: number };
    expect(result.done).toBe(12);
    expect(result.resumedAt).toBe(3);
    expect(result.attempt).toBe(2);
    expect(reply.meta).toMatchObject({ host: survivor.id, attempts: 2 });
    await survivor.waitFor("takeover", { from: victim.id });
    await s.ping();
    expect(s.replies.filter((r) => r.id === "long")).toHaveLength(1);
  });

  it("SIGSTOP/SIGCONT: the thawed host is fenced, and the client never sees a second reply", async () => {
    const { workers: [b, c], s, gate } = await gatewayAnd("b", "c");
    const pending = s.request({ id: "long", handler: "gated-steps", payload: { steps: 10, ms: 50, hold: { port: gate.port, at: 2 } } });
    // Attempt 1 waits at the gate after its checkpoint { i: 2 }: it cannot answer before its host freezes.
    const parked = await gate.arrival();
    const id = parked.requestId;
    const frozen = await hostOf(parked);
    expect(frozen === b || frozen === c).toBe(true);
    const other = frozen === b ? c : b;
    frozen.signal("SIGSTOP");
    const reply = await pending;
    expect(reply).toMatchObject({ ok: true, meta: { host: other.id, attempts: 2 } });
    const from = frozen.lines.length;
    frozen.signal("SIGCONT");
    // The thawed attempt goes on (unless its host has aborted it already): its next
    // checkpoint, or its host's heartbeat, finds the request taken over.
    parked.open();
    await frozen.waitFor("attempt aborted: this host no longer holds the request", { requestId: id }, from);
    await s.ping();
    expect(s.replies.filter((r) => r.id === "long")).toHaveLength(1);
  });

  it("the host that accepted a keyed request dies: the same key on another host gets the one reply, then replays it", async () => {
    begin();
    const a = await start("a", 0);
    const b = await start("b", 0);
    await start("w", 1);
    const first = await client(a);
    const gate = await openGate();
    const frame = { handler: "gated-steps", payload: { steps: 6, ms: 50, hold: { port: gate.port, at: 1 } }, idempotencyKey: "job-7" };
    // Its accepting host dies before it answers: that connection can only end without a reply.
    const lost = first.request({ id: 1, ...frame }).then(
      () => "answered",
      (err: Error) => err.message,
    );
    // The job waits at the gate on w: it cannot answer before a dies.
    const parked = await gate.arrival();
    await a.kill();
    expect(await lost).toMatch(/connection closed before the reply to 1/);
    const again = await client(b);
    const second = again.request({ id: 2, ...frame });
    await again.ping(); // b has read the keyed request: it joins the job, or (if that has ended) replays its answer
    parked.open();
    const reply = await second;
    expect(reply).toMatchObject({ ok: true, result: { done: 6, attempt: 1 }, meta: { host: "w" } });
    const replay = await again.request({ id: 3, ...frame });
    expect(replay).toMatchObject({ ok: true, result: { done: 6 }, meta: { replayed: true } });
    expect(await again.request({ id: 4, ...frame, payload: { steps: 1, ms: 1 } })).toMatchObject({ ok: false, error: { code: "E_IDEMPOTENCY_CONFLICT" } });
  });

  it("Client({ resubmit: true }) with a list of hosts: its host is SIGKILLed, it fails over to another and gets the one reply", async () => {
    begin();
    const a = await start("a", 0);
    const b = await start("b", 0);
    await start("w", 1);
    const client = new Client({ resubmit: true, hosts: [`127.0.0.1:${a.port}`, `127.0.0.1:${b.port}`] });
    try {
      // The job waits at the gate until a is dead: its reply can only come through b.
      const gate = await openGate();
      const call = client.call("gated-steps", { steps: 6, ms: 20, hold: { port: gate.port, at: 1 } });
      const parked = await gate.arrival();
      await a.kill();
      parked.open();
      expect(await call).toMatchObject({ ok: true, result: { done: 6, attempt: 1 }, meta: { host: "w" } });
    } finally {
      await client.close();
    }
  });

  it("a cancel on the accepting host aborts the attempt running on another host", async () => {
    begin();
    const a = await start("a", 0);
    const b = await start("b", 1);
    const s = await client(a);
    const pending = s.request({ id: "c1", handler: "steps", payload: { steps: 1000, ms: 20 } });
    const { id } = await runningWithCheckpoint(1);
    s.send({ op: "cancel", id: "c1" });
    expect(await pending).toMatchObject({ ok: false, error: { code: "E_CANCELLED" } });
    await b.waitFor("attempt aborted: this host no longer holds the request", { requestId: id });
    // b's node is free again: it runs the next request.
    expect(await s.request({ id: 2, handler: "echo", payload: 2 })).toMatchObject({ ok: true, meta: { host: "b" } });
  });

  /** Polls the mid band's pending list until `host` holds `count` entries of it. */
  async function holding(host: string, count: number): Promise<void> {
    for (;;) {
      const [, , , consumers] = (await redis.xpending(`crew:{${cluster}}:q:mid`, "hosts")) as [number, string, string, Array<[string, string]> | null];
      if (Number((consumers ?? []).find(([name]) => name === host)?.[1] ?? 0) >= count) return;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  it("takeover finds a dead host's requests behind many a live host holds, with one free slot", async () => {
    begin();
    const a = await start("a", 0);
    const b = await start("b", 1, ["--node-concurrency", "11"]);
    const s = await client(a);
    // b fills its 11 slots with long jobs: the oldest 11 entries of the pending list.
    for (let i = 0; i < 11; i++) s.send({ id: `long${i}`, handler: "steps", payload: { steps: 1000, ms: 50 } });
    await holding("b", 11);
    const c = await start("c", 1, ["--node-concurrency", "2"]);
    const gate = await openGate();
    const victims = [0, 1].map((i) =>
      s.request({ id: `v${i}`, handler: "gated-steps", payload: { steps: 10, ms: 50, hold: { port: gate.port, at: 1 } }, timeoutMs: 20_000 }),
    );
    // Both wait at the gate on c (b has no room), each after its first checkpoint: c dies
    // with both unfinished however slow the machine, as the gate is never opened.
    const parked = [await gate.arrival(), await gate.arrival()];
    for (const p of parked) expect([(await hostOf(p)).id, p.attempt]).toEqual(["c", 1]);
    await c.kill();
    // One slot frees on b. XAUTOCLAIM scans only COUNT × 10 pending entries per call:
    // taking over one request, from the start of the list each time, b only ever looked at
    // its own 10 live entries, and c's requests waited until b's long jobs ended.
    s.send({ op: "cancel", id: "long0" });
    for (const reply of await Promise.all(victims)) expect(reply).toMatchObject({ ok: true, result: { done: 10 }, meta: { host: "b", attempts: 2 } });
    await b.waitFor("takeover", { from: "c" });
  });

  it("a handler that needs a process node: runs on the host that has one, and answers E_NO_NODE when no live host has one", async () => {
    begin();
    const a = await start("a", 0);
    await start("b", 1);
    await start("c", 1);
    const s = await client(a);
    // No host has a process node: the answer a single host gives, not E_CRASHED after
    // every host let it go in turn ("every attempt's host or node died").
    expect(await s.request({ id: "none", handler: "isolated", payload: 1 })).toMatchObject({ ok: false, error: { code: "E_NO_NODE" } });
    hosts.push(await CrewHost.start("p", server.url, cluster, ["--threads", "0", "--processes", "1"]));
    expect(await s.request({ id: "one", handler: "isolated", payload: 2 })).toMatchObject({ ok: true, result: { payload: 2, kind: "process" }, meta: { host: "p" } });
  });

  it("a host that cannot run a request lets go of it uncounted, and the host that can claims it as soon as it has room", async () => {
    begin();
    // A host timeout of a minute: no heartbeat takeover comes within the request's 20 s
    // deadline (a host takes over only a host timeout after it connected), so only the
    // let-go notice can bring the request to p in time.
    const slow = ["--host-timeout-ms", "60000"];
    const a = await start("a", 0, slow);
    const b = await start("b", 1, slow);
    const p = await CrewHost.start("p", server.url, cluster, ["--threads", "0", "--processes", "1", ...slow]);
    hosts.push(p);
    const s = await client(a);
    // p's one process node is busy, so b, which has room but no process node, pulls the next one.
    const busy = s.request({ id: "busy", handler: "isolated-steps", payload: { steps: 1000, ms: 20 } });
    await runningWithCheckpoint(1);
    const wanted = s.request({ id: "wanted", handler: "isolated", payload: 3, timeoutMs: 20_000 });
    await b.waitFor("let go: no node here can run it, a node on another host can", { handler: "isolated" });
    s.send({ op: "cancel", id: "busy" });
    expect(await busy).toMatchObject({ ok: false, error: { code: "E_CANCELLED" } });
    // Not E_CRASHED, and one attempt: b's claim was given back, as it ran nowhere.
    expect(await wanted).toMatchObject({ ok: true, result: { payload: 3, kind: "process" }, meta: { host: "p", attempts: 1 } });
    expect(p.lines.some((l) => l.msg === "takeover")).toBe(false); // the let-go cleared b as the holder
  });

  it("the replies of an accepting host that died do not stay in Redis for ever", async () => {
    const { a, s, gate } = await gatewayAnd("b");
    s.send({ id: "orphan", handler: "gated-steps", payload: { steps: 4, ms: 50, hold: { port: gate.port, at: 1 } } });
    // The job waits at the gate on b: its reply is written only after a is dead.
    const parked = await gate.arrival();
    const id = parked.requestId;
    await a.kill();
    parked.open();
    while ((await redis.hget(`crew:{${cluster}}:r:${id}`, "done")) !== "1") await new Promise((resolve) => setTimeout(resolve, 10));
    // Nobody reads a's reply stream any more (a host's default id, hostname-pid, is new at
    // every start): without an expiry each dead host left its unread replies for good.
    expect(await redis.xlen(`crew:{${cluster}}:rp:a`)).toBe(1);
    expect(await redis.pttl(`crew:{${cluster}}:rp:a`)).toBeGreaterThan(0);
  });

  it("a reply whose entry in the reply stream was lost still answers at the deadline, with the result", async () => {
    const { a, s, gate } = await gatewayAnd("b");
    const pending = s.request({ id: "lost", handler: "gated-steps", payload: { steps: 10, ms: 20, hold: { port: gate.port, at: 1 } }, timeoutMs: 4000 });
    // The job waits at the gate on b after its first step: it cannot answer yet.
    const parked = await gate.arrival();
    expect((await hostOf(parked)).id).toBe("b");
    const id = parked.requestId;
    // a stops reading its reply stream (frozen, its blocked read cut off)...
    a.signal("SIGSTOP");
    const reader = (await redis.client("LIST")) as string;
    const readerId = /id=(\d+) [^\n]*name=crew-a-read/.exec(reader)![1]!;
    await redis.client("KILL", "ID", readerId);
    expect(await redis.hget(`crew:{${cluster}}:r:${id}`, "done")).not.toBe("1");
    // ...only then may the job end: its reply goes to a stream nobody reads...
    parked.open();
    // ...and the reply's entry is lost before a reads it (as MAXLEN trimming or a Redis
    // failover can lose it).
    while ((await redis.hget(`crew:{${cluster}}:r:${id}`, "done")) !== "1") await new Promise((resolve) => setTimeout(resolve, 10));
    await redis.del(`crew:{${cluster}}:rp:a`);
    a.signal("SIGCONT");
    // The deadline finds the request answered: a reads that reply instead of waiting for
    // the stream entry for ever (the client got no reply at all).
    expect(await pending).toMatchObject({ ok: true, result: { done: 10 }, meta: { host: "b" } });
  });

  it("priority bands hold across hosts: high before normal before low, whichever host accepted them", async () => {
    begin();
    const a = await start("a", 0);
    await start("b", 1);
    const s = await client(a);
    const busy = s.request({ id: "busy", handler: "steps", payload: { steps: 1000, ms: 20 } });
    await runningWithCheckpoint(1);
    s.send({ id: "lo", handler: "echo", payload: 1, priority: -5 }, { id: "mid", handler: "echo", payload: 2 }, { id: "hi", handler: "echo", payload: 3, priority: 9 });
    // All three wait in Redis (beside the running job's entry) before b gets room.
    while ((await Promise.all(["hi", "mid", "lo"].map((band) => redis.xlen(`crew:{${cluster}}:q:${band}`)))).reduce((x, y) => x + y) < 4) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    s.send({ op: "cancel", id: "busy" });
    await busy;
    const replies = await s.waitForReplies(4);
    expect(replies.slice(1).map((r) => r.id)).toEqual(["hi", "mid", "lo"]);
  });

  it("Redis killed: new requests answer E_UNAVAILABLE at once; restarted: hosts reconnect and the held reply arrives", async () => {
    // The job waits at the gate after its last checkpoint, and answers once it is opened:
    // while Redis is down, so b has to hold its reply until Redis is back.
    const { a, workers: [b], s, gate } = await gatewayAnd("b");
    const pending = s.request({ id: "held", handler: "gated-steps", payload: { steps: 3, ms: 20, hold: { port: gate.port, at: 3 } } });
    const parked = await gate.arrival();
    const [fromA, fromB] = [a.lines.length, b.lines.length];
    await server.kill("SIGKILL");
    await Promise.all([a.waitFor("redis connection error", {}, fromA), b.waitFor("redis connection error", {}, fromB)]);
    expect(await s.request({ id: "new", handler: "echo", payload: 1 })).toMatchObject({ ok: false, error: { code: "E_UNAVAILABLE" } });
    parked.open();
    // b's node has answered: the reply waits in b for Redis (its status is served without Redis).
    while ((await (await fetch(`http://127.0.0.1:${b.httpPort}/v1/status`)).json() as { requests: { completed: number } }).requests.completed < 1) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await server.restart();
    const reply = await pending;
    expect(reply).toMatchObject({ ok: true, result: { done: 3, attempt: 1 }, meta: { host: "b" } });
    expect(await s.request({ id: "after", handler: "echo", payload: 2 })).toMatchObject({ ok: true, result: 2 });
    await b.waitFor("redis connection back");
  });
});
