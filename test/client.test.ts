import { getEventListeners } from "node:events";
import { Socket } from "node:net";
import { afterEach, describe, expect, it, vi } from "vitest";
import { Client } from "../dist/protocol/client.js";
import {
  BadRequestError,
  CancelledError,
  ConnectionError,
  CrewError,
  InvalidOptionError,
  TimeoutError,
  WIRE_ERRORS,
} from "../dist/errors.js";
import { FakeServer, closedPort, echo, type Frame, type FakeConnection } from "./helpers/fake-server.js";

// Cleanup registered next to setup: every client and server a test makes is closed after it.
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  vi.restoreAllMocks();
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function setup(onFrame = echo, options: ConstructorParameters<typeof Client>[0] = {}) {
  const server = await FakeServer.start(onFrame);
  cleanups.push(() => server.close());
  const client = new Client({ port: server.port, ...options });
  cleanups.push(() => client.close());
  return { server, client };
}

/** A handler that answers nothing, so the test decides when and how. */
const hold = (): void => {};

/** Settles a promise into a value the test can inspect, so a rejection is never unhandled. */
function settle<T>(promise: Promise<T>): Promise<{ ok: true; value: T } | { ok: false; error: unknown }> {
  return promise.then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error }),
  );
}

describe("run", () => {
  it("resolves with the reply's result", async () => {
    const { client } = await setup();
    await expect(client.run("echo", { a: 1 })).resolves.toEqual({ a: 1 });
    expect(client.inFlight).toBe(0);
  });

  it("sends a run frame with the options given, and none of those left out", async () => {
    const { server, client } = await setup();
    await client.run("fib", { n: 3 }, { key: "user-7", timeoutMs: 5000, priority: 5 });
    await client.run("fib");
    expect(server.frames).toEqual([
      { id: 1, handler: "fib", payload: { n: 3 }, key: "user-7", timeoutMs: 5000, priority: 5 },
      { id: 2, handler: "fib" },
    ]);
  });

  it("matches 1000 pipelined requests answered out of order to their own results", async () => {
    const { server, client } = await setup(hold);
    const results = Array.from({ length: 1000 }, (_, i) => client.run("echo", { i }));
    expect(client.inFlight).toBe(1000);
    const frames = await server.waitForFrames(1000);
    expect(server.connections).toHaveLength(1);
    const conn = server.connections[0]!;
    // Reverse order, odd ids first: nothing lines up with the order of sending.
    const order = [...frames].reverse().sort((a, b) => ((a.id as number) % 2) - ((b.id as number) % 2));
    for (const f of order) conn.send({ id: f.id, ok: true, result: { i: (f.payload as { i: number }).i, id: f.id } });
    const values = await Promise.all(results);
    values.forEach((value, i) => expect(value).toEqual({ i, id: frames[i]!.id }));
    expect(client.inFlight).toBe(0);
  });

  it("rejects an error reply with its coded class, carrying the reply's meta", async () => {
    const meta = { node: "t1", attempts: 1, ms: 5000.2 };
    const { client } = await setup((frame, conn) =>
      conn.send({ id: frame.id, ok: false, error: { code: "E_TIMEOUT", message: "deadline of 5000 ms passed" }, meta }),
    );
    const error = await client.run("slow", null, { timeoutMs: 5000 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TimeoutError);
    expect(error).toBeInstanceOf(CrewError);
    expect(error).toMatchObject({ code: "E_TIMEOUT", message: "deadline of 5000 ms passed", meta });
  });

  it.each(Object.entries(WIRE_ERRORS))("rejects %s with the class named %s", async (code, spec) => {
    const { client } = await setup((frame, conn) => conn.send({ id: frame.id, ok: false, error: { code, message: "m" } }));
    const error = await client.run("x").catch((e: unknown) => e);
    expect(error).toMatchObject({ code, name: spec.name, message: "m" });
    expect(error).not.toHaveProperty("meta");
  });
});

describe("call", () => {
  it("returns an error reply instead of rejecting", async () => {
    const meta = { node: null, attempts: 0, ms: 0.1 };
    const error = { code: "E_UNKNOWN_HANDLER", message: "no handler named nope" };
    const { client } = await setup((frame, conn) => conn.send({ id: frame.id, ok: false, error, meta }));
    await expect(client.call("nope", 1)).resolves.toEqual({ ok: false, error, meta });
  });

  it("returns a result with its meta", async () => {
    const meta = { node: "p0", attempts: 2, ms: 12 };
    const { client } = await setup((frame, conn) => conn.send({ id: frame.id, ok: true, result: 42, meta }));
    await expect(client.call("answer")).resolves.toEqual({ ok: true, result: 42, meta });
  });
});

describe("abort", () => {
  it("sends a cancel frame, rejects at once with CancelledError, and ignores the late reply", async () => {
    const { server, client } = await setup(hold);
    const controller = new AbortController();
    const running = settle(client.run("slow", null, { signal: controller.signal }));
    const [run] = await server.waitForFrames(1);
    controller.abort("user gave up");
    const outcome = await running;
    expect(outcome.ok).toBe(false);
    expect(outcome.ok || outcome.error).toBeInstanceOf(CancelledError);
    expect(outcome.ok || outcome.error).toMatchObject({ code: "E_CANCELLED", message: "user gave up" });
    expect(client.inFlight).toBe(0);

    const [, cancel] = await server.waitForFrames(2);
    expect(cancel).toEqual({ op: "cancel", id: run!.id });

    // The server answers the cancelled request anyway; the client must shrug it off.
    server.onFrame = echo;
    server.connections[0]!.send({ id: run!.id, ok: false, error: { code: "E_CANCELLED", message: "cancelled" } });
    await expect(client.run("echo", "after")).resolves.toBe("after");
  });

  it("takes the message from an Error reason", async () => {
    const { server, client } = await setup(hold);
    const controller = new AbortController();
    const running = client.call("slow", null, { signal: controller.signal });
    await server.waitForFrames(1);
    controller.abort(new Error("shutting down the bench"));
    await expect(running).rejects.toMatchObject({ code: "E_CANCELLED", message: "shutting down the bench" });
  });

  it("rejects an already-aborted signal without sending or connecting", async () => {
    const { server, client } = await setup();
    const signal = AbortSignal.abort("too late");
    await expect(client.run("echo", 1, { signal })).rejects.toBeInstanceOf(CancelledError);
    await expect(client.call("echo", 1, { signal })).rejects.toMatchObject({ code: "E_CANCELLED", message: "too late" });
    expect(server.connections).toHaveLength(0);
    // Frames on one connection arrive in order, so if the ping is the first, nothing came before.
    await client.ping();
    expect(server.frames).toEqual([{ op: "ping", id: expect.any(Number) }]);
  });

  it("shares one abort listener among the requests of one signal, and cancels them all", async () => {
    const { server, client } = await setup(hold);
    const controller = new AbortController();
    const calls = Array.from({ length: 50 }, (_, i) => settle(client.call("slow", i, { signal: controller.signal })));
    // One listener, not 50: Node warns about a leak past 10 on one AbortSignal.
    expect(getEventListeners(controller.signal, "abort")).toHaveLength(1);
    const runs = await server.waitForFrames(50);
    controller.abort("stop the bench");
    for (const outcome of await Promise.all(calls)) {
      expect(outcome.ok || outcome.error).toMatchObject({ code: "E_CANCELLED", message: "stop the bench" });
    }
    const cancels = (await server.waitForFrames(100)).slice(50);
    expect(cancels).toEqual(runs.map((f) => ({ op: "cancel", id: f.id })));
  });

  it("removes its abort listener once the request is answered", async () => {
    const { client } = await setup();
    const controller = new AbortController();
    await Promise.all([client.run("echo", 1, { signal: controller.signal }), client.run("echo", 2, { signal: controller.signal })]);
    expect(getEventListeners(controller.signal, "abort")).toHaveLength(0);
  });

  it("leaves other requests on the connection alone", async () => {
    const { server, client } = await setup(hold);
    const controller = new AbortController();
    const cancelled = settle(client.run("slow", 1, { signal: controller.signal }));
    const kept = client.run("slow", 2, { signal: new AbortController().signal });
    const [, second] = await server.waitForFrames(2);
    controller.abort();
    expect((await cancelled).ok).toBe(false);
    server.connections[0]!.send({ id: second!.id, ok: true, result: "kept" });
    await expect(kept).resolves.toBe("kept");
  });
});

describe("connection loss", () => {
  it("rejects in-flight requests with ConnectionError and reconnects on the next request", async () => {
    const { server, client } = await setup(hold);
    const requests = [settle(client.run("a")), settle(client.call("b"))];
    const [conn] = await Promise.all([server.waitForConnection(1), server.waitForFrames(2)]);
    conn.drop();
    for (const outcome of await Promise.all(requests)) {
      expect(outcome.ok).toBe(false);
      const error = outcome.ok || outcome.error;
      expect(error).toBeInstanceOf(ConnectionError);
      expect(error).toMatchObject({ code: "E_CONNECTION" });
      expect((error as Error).message).toContain(`127.0.0.1:${server.port}`);
    }
    expect(client.inFlight).toBe(0);

    server.onFrame = echo;
    await expect(client.run("echo", "again")).resolves.toBe("again");
    expect(server.connections).toHaveLength(2);
  });

  it("rejects with ConnectionError naming host:port when the connection is refused", async () => {
    const port = await closedPort();
    const client = new Client({ port });
    cleanups.push(() => client.close());
    const error = await client.run("echo").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConnectionError);
    expect((error as Error).message).toContain(`127.0.0.1:${port}`);
    await expect(client.connect()).rejects.toBeInstanceOf(ConnectionError);
    expect(client.inFlight).toBe(0);
  });

  it("connects once a server listens, after a refused attempt", async () => {
    const port = await closedPort();
    const client = new Client({ port });
    cleanups.push(() => client.close());
    await expect(client.ping()).rejects.toBeInstanceOf(ConnectionError);
    const server = await FakeServer.start();
    cleanups.push(() => server.close());
    const other = new Client({ port: server.port });
    cleanups.push(() => other.close());
    await other.connect();
    await expect(other.run("echo", 7)).resolves.toBe(7);
  });

  it("drops the connection when a reply is over maxFrameBytes", async () => {
    const { server, client } = await setup(
      (frame, conn) => conn.send({ id: frame.id, ok: true, result: "x".repeat(frame.handler === "big" ? 4096 : 1) }),
      { maxFrameBytes: 1024 },
    );
    const error = await client.run("big").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConnectionError);
    expect((error as Error).message).toContain("maxFrameBytes");
    await expect(client.run("small")).resolves.toBe("x");
    expect(server.connections).toHaveLength(2);
  });

  it("drops the connection when the server sends a line that is not a reply", async () => {
    const { client } = await setup((_frame, conn) => conn.send("HTTP/1.1 400 Bad Request"));
    await expect(client.run("echo")).rejects.toBeInstanceOf(ConnectionError);
  });
});

describe("protocol errors", () => {
  it("reports a reply with id null through onProtocolError and keeps going", async () => {
    const reported: unknown[] = [];
    const { server, client } = await setup(hold, { onProtocolError: (error) => reported.push(error) });
    const running = client.run("echo", 1);
    const [frame] = await server.waitForFrames(1);
    const conn = server.connections[0]!;
    conn.send({ id: null, ok: false, error: { code: "E_BAD_REQUEST", message: "frame is not valid JSON" } });
    conn.send({ id: frame!.id, ok: true, result: 1 });
    await expect(running).resolves.toBe(1);
    expect(reported).toHaveLength(1);
    expect(reported[0]).toBeInstanceOf(BadRequestError);
    expect(reported[0]).toMatchObject({ message: "frame is not valid JSON" });
  });

  it("ignores a reply with id null when no callback is given", async () => {
    const { client } = await setup((frame, conn) => {
      conn.send({ id: null, ok: false, error: { code: "E_BAD_REQUEST", message: "?" } });
      echo(frame, conn);
    });
    await expect(client.run("echo", 2)).resolves.toBe(2);
  });
});

describe("payloads", () => {
  it("rejects a payload JSON cannot hold without sending anything", async () => {
    const { server, client } = await setup();
    await expect(client.run("echo", { n: 1n })).rejects.toBeInstanceOf(TypeError);
    expect(client.inFlight).toBe(0);
    await client.ping();
    expect(server.frames).toEqual([{ op: "ping", id: expect.any(Number) }]);
  });
});

describe("ping", () => {
  it("sends a ping frame and resolves on pong", async () => {
    const { server, client } = await setup();
    await expect(client.ping()).resolves.toBeUndefined();
    expect(server.frames).toEqual([{ op: "ping", id: 1 }]);
  });
});

describe("close", () => {
  it("rejects in-flight requests with ConnectionError and refuses later ones", async () => {
    const { server, client } = await setup(hold);
    const running = settle(client.run("slow"));
    const [conn] = await Promise.all([server.waitForConnection(1), server.waitForFrames(1)]);
    await client.close();
    const outcome = await running;
    expect(outcome.ok || outcome.error).toBeInstanceOf(ConnectionError);
    expect(client.inFlight).toBe(0);
    await conn.closed; // the server sees the client go, so it can cancel what it was running
    await expect(client.run("echo")).rejects.toBeInstanceOf(ConnectionError);
    expect(server.connections).toHaveLength(1);
  });

  it("asks the server to cancel its requests in flight, except keyed ones (a half-closed client would still be answered)", async () => {
    const { server, client } = await setup(hold);
    const plain = settle(client.run("slow"));
    const keyed = settle(client.run("slow", null, { idempotencyKey: "k-1" }));
    const [conn] = await Promise.all([server.waitForConnection(1), server.waitForFrames(2)]);
    await client.close();
    await conn.closed;
    const frames = await server.waitForFrames(3);
    expect(frames).toHaveLength(3);
    expect(frames[2]).toEqual({ op: "cancel", id: frames[0]!.id });
    for (const outcome of [await plain, await keyed]) expect(outcome.ok || outcome.error).toBeInstanceOf(ConnectionError);
  });

  it("still sends a cancel queued in the same turn (an abort just before close)", async () => {
    const { server, client } = await setup(hold);
    const controller = new AbortController();
    const running = settle(client.run("slow", null, { signal: controller.signal }));
    const [conn] = await Promise.all([server.waitForConnection(1), server.waitForFrames(1)]);
    controller.abort();
    await client.close();
    await conn.closed;
    const frames = await server.waitForFrames(2);
    expect(frames[1]).toEqual({ op: "cancel", id: frames[0]!.id });
    expect((await running).ok).toBe(false);
  });

  it("resolves for a client that never connected", async () => {
    await expect(new Client({ port: 1 }).close()).resolves.toBeUndefined();
  });
});

describe("writes", () => {
  it("sends 100 requests issued in one tick in one write", async () => {
    const { server, client } = await setup(hold);
    await client.connect();
    const write = vi.spyOn(Socket.prototype, "write");
    const results = Array.from({ length: 100 }, (_, i) => client.call("echo", { i }));
    const frames = await server.waitForFrames(100);
    expect(frames).toEqual(Array.from({ length: 100 }, (_, i) => ({ id: i + 1, handler: "echo", payload: { i } })));
    // Only the client's socket has the server's port as its remote end.
    const clientWrites = write.mock.contexts.filter((socket) => (socket as Socket).remotePort === server.port);
    expect(clientWrites).toHaveLength(1);
    for (const f of frames) server.connections[0]!.send({ id: f.id, ok: true, result: f.payload });
    expect((await Promise.all(results)).map((r) => r.result)).toEqual(frames.map((f) => f.payload));
  });

  it("queues frames while the socket waits for drain, and delivers all of them", async () => {
    const { server, client } = await setup();
    server.onConnection = (conn: FakeConnection) => conn.socket.pause(); // a server that is not reading
    const big = "y".repeat(256 * 1024);
    const first = Array.from({ length: 32 }, (_, i) => client.call("echo", { i, big }));
    const conn = await server.waitForConnection(1);
    // A later turn of the event loop: these frames queue behind the unflushed 8 MiB.
    await new Promise((resolve) => setImmediate(resolve));
    const second = Array.from({ length: 32 }, (_, i) => client.call("echo", { i: 32 + i, big }));
    conn.socket.resume();
    const results = await Promise.all([...first, ...second]);
    expect(results.map((r) => (r.result as { i: number }).i)).toEqual(Array.from({ length: 64 }, (_, i) => i));
    expect(server.frames.map((f: Frame) => (f.payload as { i: number }).i)).toEqual(
      Array.from({ length: 64 }, (_, i) => i),
    );
  });
});

describe("options", () => {
  it.each([
    [{ port: 0 }, "options.port"],
    [{ port: 70000 }, "options.port"],
    [{ maxFrameBytes: -1 }, "options.maxFrameBytes"],
    [{ connectTimeoutMs: 1.5 }, "options.connectTimeoutMs"],
    [{ host: "" }, "options.host"],
  ])("rejects %o naming %s", (options, name) => {
    expect(() => new Client(options)).toThrow(InvalidOptionError);
    expect(() => new Client(options)).toThrow(name);
  });
});
