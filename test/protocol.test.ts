/**
 * The NDJSON protocol over real TCP to a real cluster: every path and error code a
 * client can reach, and the connection staying usable after every error but one
 * (E_FRAME_TOO_LARGE, which closes it).
 */
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type Cluster, createCluster } from "crew";
import { SocketPool } from "./helpers/ndjson-socket.js";

const HANDLERS = fileURLToPath(new URL("./fixtures/runtime/handlers", import.meta.url));
const MAX_FRAME = 1024;

const sockets = new SocketPool();
afterEach(() => sockets.closeAll());

describe("one cluster of two thread nodes", () => {
  let cluster: Cluster;
  let port: number;
  beforeAll(async () => {
    cluster = await createCluster({ handlers: HANDLERS, threads: 2, maxFrameBytes: MAX_FRAME, logLevel: "silent" });
    ({ port } = await cluster.listen({ port: 0 }));
  });
  afterAll(() => cluster?.close());

  it("answers a run with a string id and with a number id, keeping the id's type", async () => {
    const c = await sockets.open(port);
    c.send({ id: "s1", handler: "echo", payload: { a: 1 } }, { id: 7, handler: "echo", payload: [1, "two"] });
    const [s, n] = await Promise.all([c.waitForId("s1"), c.waitForId(7)]);
    expect(s).toMatchObject({ id: "s1", ok: true, result: { a: 1 }, meta: { attempts: 1 } });
    expect(n).toMatchObject({ id: 7, ok: true, result: [1, "two"], meta: { attempts: 1 } });
    expect(s.meta!.node).toMatch(/^t[01]$/);
    expect(c.replies).toHaveLength(2);
  });

  it("answers a run without a payload with null, and op run spelled out", async () => {
    const c = await sockets.open(port);
    await expect(c.request({ id: "np", op: "run", handler: "echo" })).resolves.toMatchObject({ ok: true, result: null });
  });

  it("answers ping with pong", async () => {
    const c = await sockets.open(port);
    expect(await c.request({ op: "ping", id: "p1" })).toEqual({ id: "p1", ok: true, result: "pong" });
    expect(await c.request({ op: "ping", id: 0 })).toEqual({ id: 0, ok: true, result: "pong" });
  });

  it("sends replies in completion order, not request order", async () => {
    const c = await sockets.open(port);
    c.send({ id: "slow", handler: "sleep", payload: { ms: 300 } }, { id: "fast", handler: "echo", payload: 1 });
    await c.waitForReplies(2);
    expect(c.replies.map((r) => r.id)).toEqual(["fast", "slow"]);
    expect(c.replies[1]).toMatchObject({ ok: true, result: { slept: 300 } });
  });

  const badFrames: Array<[string, string, string | number | null]> = [
    ["invalid JSON", '{"id":1,"handler":', null],
    ["a JSON array", '[{"id":1,"handler":"echo"}]', null],
    ["a JSON number", "42", null],
    ["JSON null", "null", null],
    ["a JSON string", '"echo"', null],
    ["no id", '{"handler":"echo"}', null],
    ["id null", '{"id":null,"handler":"echo"}', null],
    ["an object id", '{"id":{"a":1},"handler":"echo"}', null],
    ["a boolean id", '{"id":true,"handler":"echo"}', null],
    ["an id over 256 characters", JSON.stringify({ id: "x".repeat(257), handler: "echo" }), null],
    ["no handler", '{"id":"nh"}', "nh"],
    ["a number handler", '{"id":"h1","handler":1}', "h1"],
    ["a number key", '{"id":"k1","handler":"echo","key":5}', "k1"],
    ["a string timeoutMs", '{"id":"t1","handler":"echo","timeoutMs":"5000"}', "t1"],
    ["timeoutMs 0", '{"id":"t2","handler":"echo","timeoutMs":0}', "t2"],
    ["a negative timeoutMs", '{"id":"t3","handler":"echo","timeoutMs":-1}', "t3"],
    ["a fractional timeoutMs", '{"id":"t4","handler":"echo","timeoutMs":1.5}', "t4"],
    ["a string priority", '{"id":"p1","handler":"echo","priority":"high"}', "p1"],
    ["a fractional priority", '{"id":"p2","handler":"echo","priority":0.5}', "p2"],
    ["an unknown op", '{"id":"o1","op":"eval","handler":"echo"}', "o1"],
  ];

  it.each(badFrames)("refuses %s with E_BAD_REQUEST and keeps the connection open", async (_what, line, id) => {
    const c = await sockets.open(port);
    await c.write(line + "\n");
    const [reply] = await c.waitForReplies(1);
    expect(reply).toMatchObject({ id, ok: false, error: { code: "E_BAD_REQUEST" } });
    expect(reply!.error!.message.length).toBeGreaterThan(0);
    expect(await c.ping()).toMatchObject({ ok: true, result: "pong" });
    expect(c.isClosed).toBe(false);
  });

  it("calls a frame that is JSON but not an object that, not invalid JSON", async () => {
    const c = await sockets.open(port);
    await c.write('[1,2]\n"echo"\n{"id":1,"handler":\n');
    const replies = await c.waitForReplies(3);
    expect(replies.map((r) => r.error?.message)).toEqual(["frame is not a JSON object", "frame is not a JSON object", expect.stringMatching(/^frame is not valid JSON: /)]);
  });

  it("refuses path-like handler names with E_BAD_REQUEST and never runs them", async () => {
    const c = await sockets.open(port);
    const before = (await cluster.status()).requests;
    const names = ["../x", "/etc/passwd", "a/b", "fib.js", "echo.js", "..", "./echo", "echo\\x", "", "x".repeat(200)];
    names.forEach((handler, i) => c.send({ id: i, handler, payload: 1 }));
    const replies = await c.waitForReplies(names.length);
    for (const r of replies) expect(r).toMatchObject({ ok: false, error: { code: "E_BAD_REQUEST" } });
    expect(replies.map((r) => r.id).sort((a, b) => Number(a) - Number(b))).toEqual(names.map((_, i) => i));
    // Refused at the door: none became a request, so no node could have run them; each is
    // counted as refused, as the HTTP front counts its bad requests.
    const after = (await cluster.status()).requests;
    expect(after.accepted).toBe(before.accepted);
    expect(after.refused).toBe(before.refused + names.length);
  });

  it("answers E_UNKNOWN_HANDLER for a well-formed name that is not loaded", async () => {
    const c = await sockets.open(port);
    const reply = await c.request({ id: "u", handler: "nope", payload: {} });
    expect(reply).toMatchObject({ id: "u", ok: false, error: { code: "E_UNKNOWN_HANDLER" }, meta: { node: null, attempts: 0 } });
    expect(reply.error!.message).toContain("nope");
    expect((await c.ping()).ok).toBe(true);
  });

  it("answers E_DUPLICATE_ID for an id in flight, and the first request still gets its own reply", async () => {
    const c = await sockets.open(port);
    // One write: the duplicate is read while the first is surely still running.
    c.send({ id: "d", handler: "sleep", payload: { ms: 200 } }, { id: "d", handler: "echo", payload: "second" });
    await c.waitForReplies(2);
    expect(c.replies[0]).toMatchObject({ id: "d", ok: false, error: { code: "E_DUPLICATE_ID" } });
    expect(c.replies[1]).toMatchObject({ id: "d", ok: true, result: { slept: 200 } });
    // Once answered, the id is free again.
    c.send({ id: "d", handler: "echo", payload: "again" });
    const [, , again] = await c.waitForReplies(3);
    expect(again).toMatchObject({ id: "d", ok: true, result: "again" });
  });

  it("cancels a running request: exactly one E_CANCELLED reply, none for the cancel frame", async () => {
    const c = await sockets.open(port);
    c.send({ id: "long", handler: "sleep", payload: { ms: 60_000 } });
    await c.ping("started");
    c.send({ op: "cancel", id: "long" }, { op: "ping", id: "after" });
    await c.waitForId("after");
    await c.waitForId("long");
    const ids = c.replies.map((r) => r.id);
    expect(ids.filter((id) => id === "long")).toHaveLength(1);
    expect(c.replies.find((r) => r.id === "long")).toMatchObject({ ok: false, error: { code: "E_CANCELLED" } });
    // started, long, after: nothing else, so the cancel frame had no reply of its own.
    expect(ids).toEqual(["started", "long", "after"]);
  });

  it("cancels queued and running requests alike, one reply each, and frees the nodes", async () => {
    const c = await sockets.open(port);
    const ids = ["q1", "q2", "q3"]; // two run on the two nodes, one waits
    c.send(...ids.map((id) => ({ id, handler: "sleep", payload: { ms: 60_000 } })));
    await c.ping("queued");
    c.send(...ids.map((id) => ({ op: "cancel", id })));
    await c.waitForReplies(4);
    for (const id of ids) expect(c.replies.find((r) => r.id === id)).toMatchObject({ ok: false, error: { code: "E_CANCELLED" } });
    // The sleeps honoured their signals: both nodes answer at once, nobody was killed.
    c.send({ id: "e1", handler: "sleep", payload: { ms: 1 } }, { id: "e2", handler: "sleep", payload: { ms: 1 } });
    await c.waitForReplies(6);
    expect(c.replies.slice(4).map((r) => r.ok)).toEqual([true, true]);
    expect((await cluster.status()).nodes.map((n) => n.crashes)).toEqual([0, 0]);
  });

  it("ignores a cancel for an id that is not in flight", async () => {
    const c = await sockets.open(port);
    c.send({ op: "cancel", id: "ghost" }, { op: "ping", id: "after" });
    await c.waitForId("after");
    expect(c.replies.map((r) => r.id)).toEqual(["after"]);
  });

  it("answers E_TIMEOUT when a request's timeoutMs passes", async () => {
    const c = await sockets.open(port);
    const reply = await c.request({ id: "t", handler: "sleep", payload: { ms: 60_000 }, timeoutMs: 100 });
    expect(reply).toMatchObject({ id: "t", ok: false, error: { code: "E_TIMEOUT" }, meta: { attempts: 1 } });
    expect(reply.error!.message).toContain("100 ms");
    expect(reply.meta!.node).toMatch(/^t[01]$/);
  });

  it("answers E_HANDLER with the message of what the handler threw", async () => {
    const c = await sockets.open(port);
    const reply = await c.request({ id: "h", handler: "crash", payload: { mode: "throw" } });
    expect(reply).toMatchObject({ id: "h", ok: false, error: { code: "E_HANDLER", message: "crash: the handler threw" } });
  });

  it("answers E_NO_NODE for an isolation: process handler on a thread-only cluster", async () => {
    const c = await sockets.open(port);
    const reply = await c.request({ id: "iso", handler: "isolated" });
    expect(reply).toMatchObject({ id: "iso", ok: false, error: { code: "E_NO_NODE" }, meta: { node: null } });
    expect((await c.ping()).ok).toBe(true);
  });

  it("reassembles a frame sent one byte at a time, splitting multibyte characters", async () => {
    const c = await sockets.open(port);
    const bytes = Buffer.from(JSON.stringify({ id: "é", handler: "echo", payload: "日本語 ✓" }) + "\n");
    for (let i = 0; i < bytes.length; i++) await c.write(bytes.subarray(i, i + 1));
    expect(await c.waitForId("é")).toMatchObject({ ok: true, result: "日本語 ✓" });
  });

  it("accepts a frame of exactly maxFrameBytes", async () => {
    const c = await sockets.open(port);
    const frame = (pad: string) => JSON.stringify({ id: "max", handler: "echo", payload: pad });
    const line = frame("x".repeat(MAX_FRAME - frame("").length));
    expect(Buffer.byteLength(line)).toBe(MAX_FRAME);
    await c.write(line + "\n");
    expect(await c.waitForId("max")).toMatchObject({ ok: true });
  });

  it("answers E_FRAME_TOO_LARGE to a frame over the limit, then closes the connection", async () => {
    const c = await sockets.open(port);
    const other = await sockets.open(port);
    await c.write(JSON.stringify({ id: "big", handler: "echo", payload: "x".repeat(MAX_FRAME) }) + "\n");
    await c.closed;
    expect(c.replies).toEqual([{ id: null, ok: false, error: { code: "E_FRAME_TOO_LARGE", message: `frame over the limit of ${MAX_FRAME} bytes (maxFrameBytes, --max-frame-bytes)` } }]);
    expect((await other.ping()).ok).toBe(true);
  });

  it("closes a connection whose unfinished frame, sent in small writes, passes the limit", async () => {
    const c = await sockets.open(port);
    const chunk = "x".repeat(64);
    // Never a newline: the receiver must count the pending bytes, not wait for a line.
    for (let sent = 0; !c.isClosed && sent < MAX_FRAME * 4; sent += chunk.length) {
      await c.write(chunk).catch(() => {});
    }
    await c.closed;
    expect(c.replies).toHaveLength(1);
    expect(c.replies[0]).toMatchObject({ id: null, ok: false, error: { code: "E_FRAME_TOO_LARGE" } });
  });
});

describe("a cluster with no room to queue (maxQueue 0)", () => {
  let cluster: Cluster;
  let port: number;
  beforeAll(async () => {
    // Lookahead off: the busy node would otherwise hold one request ahead, not the queue.
    cluster = await createCluster({ handlers: HANDLERS, threads: 1, maxQueue: 0, nodeLookahead: 0, logLevel: "silent" });
    ({ port } = await cluster.listen({ port: 0 }));
  });
  afterAll(() => cluster?.close());

  it("answers E_OVERLOADED while its node is busy, and serves again once it is free", async () => {
    const c = await sockets.open(port);
    c.send({ id: "busy", handler: "sleep", payload: { ms: 300 } }, { id: "over", handler: "echo", payload: 1 });
    expect(await c.waitForId("over")).toMatchObject({ ok: false, error: { code: "E_OVERLOADED" }, meta: { node: null } });
    expect(await c.waitForId("busy")).toMatchObject({ ok: true });
    expect(await c.request({ id: "later", handler: "echo", payload: 2 })).toMatchObject({ ok: true, result: 2 });
  });
});
