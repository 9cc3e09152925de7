/**
 * Idempotency keys without a journal (DESIGN.md, "Idempotency keys and the journal"):
 * join, replay and conflict over TCP, HTTP and cluster.run, against a real cluster; a
 * disconnect does not cancel a keyed request, an explicit cancel does. A gate holds the
 * first run on its node, so "while the first is running" is a fact, not a timing.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Gate, startCluster, type TestCluster } from "./helpers/cluster.js";
import { NdjsonSocket } from "./helpers/ndjson-socket.js";

let t: TestCluster;
let gate: Gate;
let port: number;
let httpPort: number;

beforeAll(async () => {
  t = await startCluster({ threads: 2, processes: 0 });
  gate = await Gate.open();
  const info = await t.cluster.listen({ port: 0, httpPort: 0 });
  port = info.port;
  httpPort = info.httpPort!;
});

afterAll(async () => {
  await gate.close();
  await t.close();
});

function post(key: string, body: unknown, handler = "gate"): Promise<{ status: number; body: any }> {
  return fetch(`http://127.0.0.1:${httpPort}/v1/run/${handler}`, {
    method: "POST",
    headers: { "content-type": "application/json", "idempotency-key": key },
    body: JSON.stringify(body),
  }).then(async (res) => ({ status: res.status, body: await res.json() }));
}

describe("idempotency keys", () => {
  it("joins a running request from TCP, HTTP and cluster.run; the work runs once; later runs replay", async () => {
    const payload = { port: gate.port };
    const a = await NdjsonSocket.connect(port);
    const first = a.request({ id: 1, handler: "gate", payload, idempotencyKey: "order-17" });
    const arrival = await gate.arrival();
    const b = await NdjsonSocket.connect(port);
    const joinedTcp = b.request({ id: "x", handler: "gate", payload, idempotencyKey: "order-17" });
    const joinedHttp = post("order-17", payload);
    const joinedRun = t.cluster.call("gate", payload, { idempotencyKey: "order-17" });
    await b.ping(); // the TCP join is in
    await expect.poll(() => t.cluster.status().then((s) => s.store.joined)).toBe(3);
    arrival.open("once");
    const replies = [await first, await joinedTcp];
    for (const r of replies) expect(r).toMatchObject({ ok: true, result: { said: "once", attempt: 1 } });
    expect((await joinedHttp).body.result.said).toBe("once");
    expect(await joinedRun).toMatchObject({ ok: true, result: { said: "once" } });

    const replay = await a.request({ id: 2, handler: "gate", payload, idempotencyKey: "order-17" });
    expect(replay).toMatchObject({ ok: true, result: { said: "once" }, meta: { replayed: true, attempts: 1 } });
    const httpReplay = await post("order-17", payload);
    expect(httpReplay.status).toBe(200);
    expect(httpReplay.body.meta.replayed).toBe(true);
    await expect(t.cluster.run("gate", payload, { idempotencyKey: "order-17" })).resolves.toMatchObject({ said: "once" });
    const status = await t.cluster.status();
    expect(status.store).toMatchObject({ kind: "memory", replayed: 3, open: 0, kept: 1 });
    await a.close();
    await b.close();
  });

  it("answers E_IDEMPOTENCY_CONFLICT (HTTP 422) for the same key with another handler or payload", async () => {
    const s = await NdjsonSocket.connect(port);
    const ok = await s.request({ id: 1, handler: "nap", payload: { ms: 0 }, idempotencyKey: "k-conflict" });
    expect(ok.ok).toBe(true);
    const other = await s.request({ id: 2, handler: "nap", payload: { ms: 1 }, idempotencyKey: "k-conflict" });
    expect(other.error?.code).toBe("E_IDEMPOTENCY_CONFLICT");
    const http = await post("k-conflict", { ms: 0 }, "probe");
    expect(http.status).toBe(422);
    expect(http.body.error.code).toBe("E_IDEMPOTENCY_CONFLICT");
    await expect(t.cluster.run("nap", { ms: 2 }, { idempotencyKey: "k-conflict" })).rejects.toMatchObject({ code: "E_IDEMPOTENCY_CONFLICT" });
    await s.close();
  });

  it("refuses keys that are empty or longer than 256 characters", async () => {
    const s = await NdjsonSocket.connect(port);
    for (const key of ["", "k".repeat(257), 17]) {
      const r = await s.request({ id: 1, handler: "nap", payload: { ms: 0 }, idempotencyKey: key });
      expect(r.error?.code).toBe("E_BAD_REQUEST");
    }
    expect((await s.request({ id: 2, handler: "nap", payload: { ms: 0 }, idempotencyKey: "k".repeat(256) })).ok).toBe(true);
    expect((await post("k".repeat(257), { ms: 0 }, "nap")).status).toBe(400);
    await s.close();
  });

  it("a disconnect does not cancel a keyed request: the client comes back for its reply", async () => {
    const payload = { port: gate.port, n: 2 };
    const a = await NdjsonSocket.connect(port);
    a.send({ id: 1, handler: "gate", payload, idempotencyKey: "come-back" });
    const arrival = await gate.arrival();
    await a.close();
    // The request is still open: a new connection joins it rather than starting another run.
    const b = await NdjsonSocket.connect(port);
    const joined = b.request({ id: 1, handler: "gate", payload, idempotencyKey: "come-back" });
    await b.ping();
    arrival.open("still here");
    expect(await joined).toMatchObject({ ok: true, result: { said: "still here", attempt: 1 }, meta: { attempts: 1 } });
    await b.close();
  });

  it("an HTTP client that hangs up does not cancel a keyed request either", async () => {
    const payload = { port: gate.port, n: 4 };
    const abort = new AbortController();
    const gone = fetch(`http://127.0.0.1:${httpPort}/v1/run/gate`, {
      method: "POST",
      headers: { "content-type": "application/json", "idempotency-key": "http-back" },
      body: JSON.stringify(payload),
      signal: abort.signal,
    }).catch((err: unknown) => err);
    const arrival = await gate.arrival();
    abort.abort();
    expect(await gone).toBeInstanceOf(Error);
    const joinedBefore = (await t.cluster.status()).store.joined;
    expect((await t.cluster.status()).store.open).toBe(1); // still running after the hang-up
    const back = post("http-back", payload);
    await expect.poll(async () => (await t.cluster.status()).store.joined).toBe(joinedBefore + 1);
    arrival.open("after the hang-up");
    const reply = await back;
    expect(reply.status).toBe(200);
    expect(reply.body).toMatchObject({ result: { said: "after the hang-up", attempt: 1 }, meta: { attempts: 1 } });
  });

  it("an explicit cancel cancels a keyed request, and frees its key", async () => {
    const payload = { port: gate.port, n: 3 };
    const a = await NdjsonSocket.connect(port);
    const reply = a.request({ id: 9, handler: "gate", payload, idempotencyKey: "cancel-me" });
    await gate.arrival();
    a.send({ op: "cancel", id: 9 });
    expect((await reply).error?.code).toBe("E_CANCELLED");
    // Nothing is replayed for a cancelled request: the key runs again.
    const again = a.request({ id: 10, handler: "gate", payload, idempotencyKey: "cancel-me" });
    const arrival = await gate.arrival();
    arrival.open("second");
    expect(await again).toMatchObject({ ok: true, result: { said: "second" } });
    expect((await again).meta).not.toHaveProperty("replayed");
    await a.close();
  });
});

describe("the table of kept replies is bounded", () => {
  it("answers E_OVERLOADED for a new key past maxKeptReplies, and still replays the kept ones", async () => {
    const small = await startCluster({ threads: 1, processes: 0, maxKeptReplies: 2 });
    try {
      await small.cluster.run("nap", { ms: 0 }, { idempotencyKey: "a" });
      await small.cluster.run("nap", { ms: 0 }, { idempotencyKey: "b" });
      await expect(small.cluster.run("nap", { ms: 0 }, { idempotencyKey: "c" })).rejects.toMatchObject({ code: "E_OVERLOADED" });
      const replay = await small.cluster.call("nap", { ms: 0 }, { idempotencyKey: "a" });
      expect(replay.meta.replayed).toBe(true);
      expect((await small.cluster.call("nap", { ms: 0 })).ok).toBe(true); // unkeyed requests are not held back
    } finally {
      await small.close();
    }
  });
});
