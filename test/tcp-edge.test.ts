/**
 * The TCP receiver's edge, on real sockets: half-closed clients, ids that JSON would
 * change, refusals that must reach the client before the close, the drain, idle
 * connections, the connection cap, slow readers and the queue's fair sharing.
 */
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { type Cluster, type ClusterOptions, createCluster } from "crew";
import { LogCapture } from "./helpers/cluster.js";
import { NdjsonSocket, SocketPool } from "./helpers/ndjson-socket.js";

const BIG = fileURLToPath(new URL("./fixtures/unread", import.meta.url));
const sockets = new SocketPool();
const clusters: Cluster[] = [];

afterEach(async () => {
  await sockets.closeAll();
  await Promise.all(clusters.splice(0).map((c) => c.close()));
});

async function start(options: ClusterOptions = {}): Promise<{ cluster: Cluster; port: number; logs: LogCapture }> {
  const logs = new LogCapture("debug");
  const cluster = await createCluster({ handlers: "workers", threads: 1, drainTimeoutMs: 1000, logger: logs.logger, ...options });
  clusters.push(cluster);
  const { port } = await cluster.listen({ port: 0 });
  return { cluster, port, logs };
}

describe("a client that half-closes (shutdown(SHUT_WR), nc -q1)", () => {
  it("gets every reply, and the socket closes after the last one", async () => {
    const { port } = await start();
    const c = await sockets.open(port);
    c.send({ id: 1, handler: "fib", payload: { n: 25 } }, { id: 2, handler: "sleep", payload: { ms: 50 } }, { id: 3, handler: "echo", payload: "x" });
    c.halfClose();
    await c.closed;
    expect(c.replies.map((r) => [r.id, r.ok])).toEqual(
      expect.arrayContaining([
        [1, true],
        [2, true],
        [3, true],
      ]),
    );
    expect(c.replies.find((r) => r.id === 1)!.result).toBe(75025);
  });

  it("logs a debug line when a real disconnect cancels requests", async () => {
    const { port, logs } = await start();
    const c = await sockets.open(port);
    c.send({ id: "a", handler: "sleep", payload: { ms: 60_000 } }, { id: "b", handler: "sleep", payload: { ms: 60_000 } });
    await c.ping();
    await c.close(); // a reset: the client is gone
    const line = await logs.waitFor("client disconnected: cancelling its requests");
    expect(line.cancelled).toBe(2);
  });
});

describe("ids", () => {
  it.each([["12345678901234567890"], ["1e-999"], ["1.0"], ["-0"], ["9007199254740992"]])("refuses the numeric id %s with E_BAD_REQUEST", async (id) => {
    const { port } = await start();
    const c = await sockets.open(port);
    c.send(`{"id":${id},"handler":"echo","payload":1}`);
    const [reply] = await c.waitForReplies(1);
    expect(reply).toMatchObject({ id: null, ok: false, error: { code: "E_BAD_REQUEST" } });
    expect(reply!.error!.message).toContain("id must be");
  });

  it("refuses a frame that is not UTF-8 (E_BAD_REQUEST, id null) instead of running it on U+FFFD, and serves the next", async () => {
    const { cluster, port } = await start();
    const c = await sockets.open(port);
    const before = (await cluster.status()).requests.accepted;
    // "\xff" is never UTF-8; a lone continuation byte and a truncated sequence neither.
    for (const bad of [[0xff], [0x80], [0xe2, 0x82]]) {
      await c.write(Buffer.concat([Buffer.from('{"id":"x","handler":"echo","payload":"'), Buffer.from(bad), Buffer.from('"}\n')]));
    }
    await c.write('{"id":"ok","handler":"echo","payload":"caf\u00e9 \u20ac"}\n');
    const replies = await c.waitForReplies(4);
    expect(replies.slice(0, 3)).toEqual(Array(3).fill(expect.objectContaining({ id: null, ok: false, error: expect.objectContaining({ code: "E_BAD_REQUEST", message: "frame is not valid UTF-8" }) })));
    expect(replies[3]).toMatchObject({ id: "ok", ok: true, result: "café €" });
    expect((await cluster.status()).requests.accepted - before).toBe(1);
  });

  it("echoes safe integer and string ids as sent", async () => {
    const { port } = await start();
    const c = await sockets.open(port);
    c.send('{"id":9007199254740991,"handler":"echo","payload":1}', '{"id":-42,"handler":"echo","payload":2}', '{"id":"12345678901234567890","handler":"echo","payload":3}');
    const replies = await c.waitForReplies(3);
    expect(replies.map((r) => r.id).sort()).toEqual([-42, 9007199254740991, "12345678901234567890"].sort());
    expect(replies.every((r) => r.ok)).toBe(true);
  });
});

describe("refusals reach the client before the close", () => {
  it("an endless line gets E_FRAME_TOO_LARGE, then FIN, while the client is still sending", async () => {
    const { port } = await start({ maxFrameBytes: 64 * 1024 });
    for (let round = 0; round < 5; round++) {
      const c = await sockets.open(port);
      const chunk = Buffer.alloc(256 * 1024, 0x78);
      let writing = true;
      void (async () => {
        while (writing && !c.socket.destroyed) await c.write(chunk).catch(() => (writing = false));
      })();
      const [reply] = await c.until(() => (c.replies.length > 0 ? c.replies : undefined), "the refusal").catch(() => [undefined]);
      writing = false;
      expect(reply).toMatchObject({ id: null, ok: false, error: { code: "E_FRAME_TOO_LARGE" } });
      await c.closed;
    }
  });
});

describe("a drain", () => {
  it("answers what clients send while it drains E_SHUTTING_DOWN, and ends each connection after its last reply", async () => {
    const { cluster, port, logs } = await start({ drainTimeoutMs: 60_000 });
    const c = await sockets.open(port);
    c.send({ id: "long", handler: "sleep", payload: { ms: 300 } });
    await c.ping();
    const from = logs.lines.length;
    const closed = cluster.close();
    await logs.waitFor("draining", {}, from);
    const ids = Array.from({ length: 32 }, (_, i) => `late-${i}`);
    c.send(...ids.map((id) => ({ id, handler: "echo", payload: id })));
    await closed;
    await c.closed;
    expect(c.replies.find((r) => r.id === "long")).toMatchObject({ ok: true });
    for (const id of ids) expect(c.replies.find((r) => r.id === id)).toMatchObject({ ok: false, error: { code: "E_SHUTTING_DOWN" } });
  });
});

describe("connections", () => {
  it("closes a connection idle for idleConnectionMs, but not one waiting for a long request", async () => {
    const { port, logs } = await start({ idleConnectionMs: 200 });
    const idle = await sockets.open(port);
    const busy = await sockets.open(port);
    const reply = busy.request({ id: 1, handler: "sleep", payload: { ms: 600 } });
    await idle.closed;
    expect(idle.replies).toEqual([]);
    expect(await reply).toMatchObject({ id: 1, ok: true });
    expect(busy.isClosed).toBe(false);
    expect(logs.find("idle connection closed").length).toBeGreaterThanOrEqual(1);
  });

  it("refuses a connection over maxConnections with E_OVERLOADED and keeps serving the others", async () => {
    const { port } = await start({ maxConnections: 3 });
    const open = [await sockets.open(port), await sockets.open(port), await sockets.open(port)];
    await Promise.all(open.map((c) => c.ping())); // all three accepted
    const extra = await sockets.open(port);
    const [refusal] = await extra.waitForReplies(1);
    expect(refusal).toMatchObject({ id: null, ok: false, error: { code: "E_OVERLOADED" } });
    await extra.closed;
    for (const c of open) expect(await c.request({ id: "e", handler: "echo", payload: 5 })).toMatchObject({ ok: true, result: 5 });
    // Once one leaves, there is room again (the server sees the reset a moment later: retry until then).
    await open[0]!.close();
    let reply;
    for (let tries = 0; tries < 100 && reply?.ok !== true; tries++) {
      const next = await sockets.open(port);
      next.send({ id: "n", handler: "echo", payload: 6 });
      [reply] = await next.waitForReplies(1);
    }
    expect(reply).toMatchObject({ id: "n", ok: true, result: 6 });
  });
});

describe("a client that does not read its replies", () => {
  it("has its waiting requests held (they stop running) until it reads, then gets every reply", async () => {
    const { cluster, port, logs } = await start({ nodePipeline: 0, nodeLookahead: 0, maxUnsentReplyBytes: 1024 * 1024 });
    const c = await sockets.open(port);
    c.socket.pause(); // reads nothing
    const COUNT = 80;
    const big = "x".repeat(256 * 1024);
    c.send(...Array.from({ length: COUNT }, (_, i) => ({ id: i, handler: "echo", payload: big })));
    await logs.waitFor("client not reading its replies: holding its waiting requests");
    const held = (await cluster.status()).requests.completed;
    // Other work still runs, and none of the held requests runs meanwhile (at most the one running when the hold began).
    expect(await cluster.run("echo", "other")).toBe("other");
    expect(await cluster.run("echo", "other")).toBe("other");
    const after = (await cluster.status()).requests.completed;
    expect(after - held).toBeLessThanOrEqual(3);
    expect(held).toBeLessThan(COUNT);
    c.socket.resume();
    const replies = await c.waitForReplies(COUNT);
    expect(replies.every((r) => r.ok && (r.result as string).length === big.length)).toBe(true);
  });

  it("is cut when the replies unread across all connections pass maxPendingBytes, and a reading client is served", async () => {
    // Small requests, 4 MB replies: each connection alone stays within maxUnsentReplyBytes.
    const MB = 1024 * 1024;
    const { cluster, port, logs } = await start({ handlers: BIG, threads: 2, maxPendingBytes: 16 * MB, maxUnsentReplyBytes: 64 * MB });
    const idle = await Promise.all(Array.from({ length: 8 }, () => sockets.open(port)));
    for (const c of idle) {
      c.socket.pause(); // reads nothing
      c.send(...Array.from({ length: 6 }, (_, i) => ({ id: i, handler: "big", payload: { n: 4 * MB } })));
    }
    const cut = await logs.waitFor("replies unread across connections over maxPendingBytes: cutting the connection holding the most");
    expect(cut.unreadTotal).toBeGreaterThan(16 * MB);
    expect(cut.limit).toBe(16 * MB);
    // The primary serves on, a client that reads included.
    const reader = await sockets.open(port);
    expect(await reader.request({ id: "r", handler: "big", payload: { n: 10 } })).toMatchObject({ ok: true, result: "x".repeat(10) });
    // Reading again: a connection that was cut closes after what reached it; the others get every reply.
    for (const c of idle) c.socket.resume();
    const outcomes = await Promise.all(idle.map((c) => c.waitForReplies(6).then(() => "all", () => "cut")));
    expect(outcomes).toContain("cut");
    for (const [i, c] of idle.entries()) if (outcomes[i] === "all") expect(c.replies.every((r) => r.ok)).toBe(true);
    expect(await cluster.run("big", { n: 3 })).toBe("xxx");
  });
});

describe("the queue's fair sharing", () => {
  it("lets a normal client in while greedy connections fill the queue", async () => {
    const { port } = await start({ maxQueue: 40, nodePipeline: 0, nodeLookahead: 0 });
    const greedy = await Promise.all([0, 1, 2, 3].map(() => sockets.open(port)));
    greedy.forEach((g, n) => g.send(...Array.from({ length: 30 }, (_, i) => ({ id: `g${n}-${i}`, handler: "sleep", payload: { ms: 50 } }))));
    await Promise.all(greedy.map((g) => g.ping()));
    const normal = await NdjsonSocket.connect(port);
    try {
      normal.send(...Array.from({ length: 5 }, (_, i) => ({ id: i, handler: "echo", payload: i })));
      const replies = await normal.waitForReplies(5);
      expect(replies.map((r) => r.ok)).toEqual([true, true, true, true, true]);
      await Promise.all(greedy.map((g) => g.waitForReplies(31)));
      const shed = greedy.flatMap((g) => g.replies).filter((r) => r.error?.code === "E_OVERLOADED");
      expect(shed.some((r) => r.error!.message.includes("share"))).toBe(true);
    } finally {
      await normal.close();
    }
  });
});
