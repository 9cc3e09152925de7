import type { EventEmitter } from "node:events";
import { connect, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCluster, type Cluster } from "crew";
import { waitFor, watch } from "./helpers/cluster-events.js";
import { adminAllowed, presentedAdminToken } from "../dist/protocol/http-receiver.js";

const LIMIT = 4096;
let cluster: Cluster;
let events: EventEmitter;
let base: string;
let httpPort: number;
const extra: Cluster[] = [];

beforeAll(async () => {
  cluster = await createCluster({ handlers: "workers", threads: 2, logLevel: "silent", maxFrameBytes: LIMIT });
  httpPort = (await cluster.listen({ port: 0, httpPort: 0 })).httpPort!;
  base = `http://127.0.0.1:${httpPort}`;
  events = watch(cluster);
});

afterAll(async () => {
  await Promise.all([cluster, ...extra].map((c) => c.close()));
});

async function run(handler: string, body?: string | Uint8Array, headers: Record<string, string> = {}, url = base) {
  const res = await fetch(`${url}/v1/run/${handler}`, { method: "POST", body, headers: { "content-type": "application/json", ...headers } });
  return { status: res.status, body: (await res.json()) as any };
}

interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** One socket spoken to byte by byte: pipelining, keep-alive and Expect need the wire itself. */
class RawConnection {
  readonly socket: Socket;
  #buffer = Buffer.alloc(0);
  #ready: RawResponse[] = [];
  #waiting: Array<{ resolve: (r: RawResponse) => void; reject: (e: Error) => void }> = [];
  #closed = false;

  constructor(port: number) {
    this.socket = connect(port, "127.0.0.1");
    this.socket.on("data", (chunk: Buffer) => {
      this.#buffer = Buffer.concat([this.#buffer, chunk]);
      for (let r = this.#parse(); r; r = this.#parse()) {
        const waiter = this.#waiting.shift();
        if (waiter) waiter.resolve(r);
        else this.#ready.push(r);
      }
    });
    this.socket.on("error", () => {});
    this.socket.on("close", () => {
      this.#closed = true;
      for (const w of this.#waiting.splice(0)) w.reject(new Error("the server closed the connection"));
    });
  }

  write(text: string): void {
    this.socket.write(text);
  }

  next(): Promise<RawResponse> {
    const r = this.#ready.shift();
    if (r) return Promise.resolve(r);
    if (this.#closed) return Promise.reject(new Error("the server closed the connection"));
    return new Promise((resolve, reject) => this.#waiting.push({ resolve, reject }));
  }

  #parse(): RawResponse | null {
    const end = this.#buffer.indexOf("\r\n\r\n");
    if (end === -1) return null;
    const [statusLine, ...lines] = this.#buffer.subarray(0, end).toString().split("\r\n");
    const headers: Record<string, string> = {};
    for (const line of lines) headers[line.slice(0, line.indexOf(":")).toLowerCase()] = line.slice(line.indexOf(":") + 1).trim();
    const length = Number(headers["content-length"] ?? 0);
    if (this.#buffer.length < end + 4 + length) return null;
    const body = this.#buffer.subarray(end + 4, end + 4 + length).toString();
    this.#buffer = this.#buffer.subarray(end + 4 + length);
    return { status: Number(statusLine!.split(" ")[1]), headers, body };
  }
}

function rawRequest(method: string, path: string, body = "", headers: Record<string, string | number> = {}): string {
  const all = { host: "127.0.0.1", "content-type": "application/json", "content-length": Buffer.byteLength(body), ...headers };
  return `${method} ${path} HTTP/1.1\r\n${Object.entries(all).map(([k, v]) => `${k}: ${v}\r\n`).join("")}\r\n${body}`;
}

describe("POST /v1/run/:handler", () => {
  it("answers 200 with the result and the meta", async () => {
    const { status, body } = await run("echo", '{"a":[1,"two",null]}');
    expect(status).toBe(200);
    expect(body.result).toEqual({ a: [1, "two", null] });
    expect(body.meta).toMatchObject({ attempts: 1, node: expect.stringMatching(/^t[01]$/) });
  });

  it("runs with no payload when the body is empty", async () => {
    expect(await run("echo")).toMatchObject({ status: 200, body: { result: null } });
  });

  it("takes the key, deadline and priority from x-crew-* headers", async () => {
    const headers = { "x-crew-key": "user-7", "x-crew-timeout-ms": "60", "x-crew-priority": "5" };
    expect((await run("echo", "1", headers)).status).toBe(200);
    const slow = await run("sleep", '{"ms":5000}', headers);
    expect(slow.status).toBe(504);
    expect(slow.body.error.message).toContain("60 ms");
  });

  it.each([
    ["no such handler", "nope", "{}", {}, 404, "E_UNKNOWN_HANDLER"],
    ["a body that is not JSON", "echo", '{"a":', {}, 400, "E_BAD_REQUEST"],
    ["a body that is not UTF-8", "echo", Buffer.from([0x22, 0xff, 0x22]), {}, 400, "E_BAD_REQUEST"],
    ["a handler name that is a path", "a%2F..%2Fb", "{}", {}, 400, "E_BAD_REQUEST"],
    ["bad percent-encoding", "%E0%A4%A", "{}", {}, 400, "E_BAD_REQUEST"],
    ["a deadline that is not an integer", "echo", "1", { "x-crew-timeout-ms": "soon" }, 400, "E_BAD_REQUEST"],
    ["a priority out of range", "echo", "1", { "x-crew-priority": "99999999" }, 400, "E_BAD_REQUEST"],
    ["a handler that throws", "crash", '{"mode":"throw"}', {}, 500, "E_HANDLER"],
    ["a deadline that passes", "sleep", '{"ms":5000}', { "x-crew-timeout-ms": "30" }, 504, "E_TIMEOUT"],
    ["every attempt's node dying", "crash", '{"mode":"exit"}', {}, 502, "E_CRASHED"],
  ])("answers %s with its status and code", async (_what, handler, body, headers, status, code) => {
    const reply = await run(handler, body, headers);
    expect(reply.status).toBe(status);
    expect(reply.body.error.code).toBe(code);
    expect(typeof reply.body.error.message).toBe("string");
  });

  it("names the header or the path part a refusal is about", async () => {
    const cases: Array<[string, Record<string, string>, string]> = [
      ["echo", { "x-crew-timeout-ms": "soon" }, "header x-crew-timeout-ms: timeoutMs must be an integer"],
      ["echo", { "x-crew-priority": "99999999" }, "header x-crew-priority: priority must be an integer"],
      ["echo", { "idempotency-key": "k".repeat(2000) }, "header idempotency-key: idempotencyKey must be a string"],
      ["a%2F..%2Fb", {}, "the handler in the path: handler must be a handler name"],
    ];
    for (const [handler, headers, message] of cases) {
      const reply = await run(handler, "1", headers);
      expect({ handler, status: reply.status, message: reply.body.error.message }).toEqual({ handler, status: 400, message: expect.stringContaining(message) });
    }
  });

  it("answers 413 to a declared body over maxFrameBytes and keeps the connection usable", async () => {
    const conn = new RawConnection(httpPort);
    try {
      conn.write(rawRequest("POST", "/v1/run/echo", `"${"x".repeat(LIMIT + 100)}"`));
      const tooLarge = await conn.next();
      expect(tooLarge.status).toBe(413);
      expect(JSON.parse(tooLarge.body).error.code).toBe("E_FRAME_TOO_LARGE");
      conn.write(rawRequest("POST", "/v1/run/echo", '"after"'));
      expect(JSON.parse((await conn.next()).body).result).toBe("after");
    } finally {
      conn.socket.destroy();
    }
  });

  it("answers 413 to a chunked body once it passes the limit", async () => {
    const chunk = new TextEncoder().encode("x".repeat(1024));
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent++ < 8) controller.enqueue(chunk);
        else controller.close();
      },
    });
    const res = await fetch(`${base}/v1/run/echo`, { method: "POST", headers: { "content-type": "application/json" }, body, duplex: "half" } as RequestInit);
    expect(res.status).toBe(413);
    expect(((await res.json()) as any).error.code).toBe("E_FRAME_TOO_LARGE");
  });

  it("refuses an Expect: 100-continue body over the limit before it is sent", async () => {
    const conn = new RawConnection(httpPort);
    try {
      conn.write(rawRequest("POST", "/v1/run/echo", "", { "content-length": LIMIT + 1, expect: "100-continue" }));
      const res = await conn.next();
      expect(res.status).toBe(413); // no 100 Continue first
      expect(res.headers.connection).toBe("close");
    } finally {
      conn.socket.destroy();
    }
  });

  it("cancels the request when the client disconnects, and the handler lets go", async () => {
    const started = waitFor(events, "attemptStarted", (job) => job.handler === "sleep");
    const done = waitFor(events, "requestDone", (job) => job.handler === "sleep");
    const abort = new AbortController();
    const call = fetch(`${base}/v1/run/sleep`, { method: "POST", headers: { "content-type": "application/json" }, body: '{"ms":60000}', signal: abort.signal }).catch((e) => e);
    const [, node] = await started;
    const crashesBefore = node.crashes;
    abort.abort();
    expect(await call).toBeInstanceOf(Error);
    const [, outcome] = await done;
    expect(outcome.error.code).toBe("E_CANCELLED");
    // The sleep handler honours ctx.signal: its node frees up without being killed.
    while (node.inFlight > 0) await new Promise((r) => setImmediate(r));
    expect(node.crashes).toBe(crashesBefore);
  });
});

describe("the other endpoints", () => {
  it("GET /healthz answers 200 while the cluster accepts work, HEAD too", async () => {
    const res = await fetch(`${base}/healthz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ ok: true });
    expect((await fetch(`${base}/healthz`, { method: "HEAD" })).status).toBe(200);
  });

  it("GET /v1/status lists the nodes, the queue and the counters", async () => {
    // The crash tests above leave nodes restarting: wait for them rather than race them.
    while (cluster.nodes.some((n) => n.state !== "up")) await waitFor(events, "nodeRestarted");
    const res = await fetch(`${base}/v1/status`);
    expect(res.headers.get("content-type")).toMatch(/^application\/json/);
    const status = (await res.json()) as any;
    expect(status.nodes.map((n: any) => n.id)).toEqual(["t0", "t1"]);
    // Thread nodes live in one host process, not in the primary (see src/nodes/thread-host.ts).
    expect(status.nodes[0]).toMatchObject({ kind: "thread", pid: status.nodes[1].pid, threadId: expect.any(Number) });
    expect(status.nodes[0].pid).not.toBe(process.pid);
    expect(status.queue).toEqual({ length: 0, max: 10_000 });
    expect(status.requests.accepted).toBeGreaterThan(0);
  });

  it("GET /metrics answers Prometheus text", async () => {
    const res = await fetch(`${base}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("text/plain; version=0.0.4");
    expect(await res.text()).toContain("# TYPE crew_requests_total counter");
  });

  it("answers 404 to an unknown route and 405 (with Allow) to a wrong method", async () => {
    expect((await fetch(`${base}/v2/nothing`)).status).toBe(404);
    const getRun = await fetch(`${base}/v1/run/echo`);
    expect(getRun.status).toBe(405);
    expect(getRun.headers.get("allow")).toBe("POST");
    const postHealth = await fetch(`${base}/healthz`, { method: "POST" });
    expect(postHealth.status).toBe(405);
    expect(postHealth.headers.get("allow")).toBe("GET, HEAD");
  });

  it("keeps connections alive: sequential and pipelined requests share one socket", async () => {
    const conn = new RawConnection(httpPort);
    try {
      conn.write(rawRequest("POST", "/v1/run/echo", "1"));
      const first = await conn.next();
      expect(first.headers.connection).toBe("keep-alive");
      conn.write(rawRequest("POST", "/v1/run/echo", "2") + rawRequest("GET", "/healthz") + rawRequest("POST", "/v1/run/echo", "3"));
      const replies = [await conn.next(), await conn.next(), await conn.next()];
      expect(replies.map((r) => r.status)).toEqual([200, 200, 200]);
      expect([first, ...replies].map((r) => JSON.parse(r.body).result ?? JSON.parse(r.body).ok)).toEqual([1, 2, true, 3]);
    } finally {
      conn.socket.destroy();
    }
  });
});

describe("POST /v1/nodes/:id/kill", () => {
  it("kills a node for a loopback peer; the node comes back under its id", async () => {
    const restarted = waitFor(events, "nodeRestarted", (node) => node.id === "t1");
    const res = await fetch(`${base}/v1/nodes/t1/kill`, { method: "POST" });
    expect(res.status).toBe(202);
    expect(await res.json()).toEqual({ killed: "t1" });
    const [node] = await restarted;
    expect(node.state).toBe("up");
  });

  it("answers 404 for a node that does not exist, 405 to GET", async () => {
    expect((await fetch(`${base}/v1/nodes/t9/kill`, { method: "POST" })).status).toBe(404);
    expect((await fetch(`${base}/v1/nodes/t0/kill`)).status).toBe(405);
  });

  it.each([
    ["a loopback peer", "127.0.0.1", undefined, undefined, true],
    ["an IPv6 loopback peer", "::1", undefined, undefined, true],
    ["an IPv4-mapped loopback peer", "::ffff:127.0.0.5", undefined, undefined, true],
    ["a remote peer with no token configured", "10.1.2.3", undefined, "anything", false],
    ["a remote peer without the header", "10.1.2.3", "s3cret", undefined, false],
    ["a remote peer with a wrong token", "10.1.2.3", "s3cret", "s3cre", false],
    ["a remote peer with the token twice", "10.1.2.3", "s3cret", ["s3cret", "s3cret"], false],
    ["a remote peer with the token", "10.1.2.3", "s3cret", "s3cret", true],
    ["an empty token configured", "10.1.2.3", "", "", false],
    ["an unknown peer address", undefined, "s3cret", "nope", false],
  ])("adminAllowed: %s → %s", (_what, address, token, header, allowed) => {
    expect(adminAllowed(address, token, header)).toBe(allowed);
  });

  it.each([
    ["Authorization: Bearer (DESIGN.md)", { authorization: "Bearer s3cret" }, "s3cret"],
    ["the scheme in any case", { authorization: "bearer s3cret" }, "s3cret"],
    ["Bearer wins over the older header", { authorization: "Bearer s3cret", "x-crew-admin-token": "other" }, "s3cret"],
    ["the older x-crew-admin-token header", { "x-crew-admin-token": "s3cret" }, "s3cret"],
    ["another scheme is no token", { authorization: "Basic czNjcmV0" }, undefined],
    ["neither header", {}, undefined],
  ])("presentedAdminToken: %s", (_what, headers, token) => {
    expect(presentedAdminToken(headers)).toBe(token);
  });
});

describe("refusals that need a cluster of their own", () => {
  async function small(options: Parameters<typeof createCluster>[0]) {
    const c = await createCluster({ threads: 1, logLevel: "silent", ...options });
    extra.push(c);
    const { httpPort: port } = await c.listen({ port: 0, httpPort: 0 });
    return { c, url: `http://127.0.0.1:${port}`, port: port!, events: watch(c) };
  }

  it("answers 503 E_OVERLOADED when the queue is full", async () => {
    // Lookahead off: the busy node would otherwise hold one request ahead, not the queue.
    const { url, events: ev } = await small({ handlers: "workers", maxQueue: 0, nodeLookahead: 0 });
    const started = waitFor(ev, "attemptStarted");
    const abort = new AbortController();
    const busy = fetch(`${url}/v1/run/sleep`, { method: "POST", headers: { "content-type": "application/json" }, body: '{"ms":60000}', signal: abort.signal }).catch(() => {});
    await started;
    expect(await run("echo", "1", {}, url)).toMatchObject({ status: 503, body: { error: { code: "E_OVERLOADED" } } });
    abort.abort();
    await busy;
  });

  it("answers 503 E_NO_NODE for a process-only handler on a cluster of threads", async () => {
    const { url } = await small({ handlers: "test/fixtures/http" });
    expect(await run("needs-process", "{}", {}, url)).toMatchObject({ status: 503, body: { error: { code: "E_NO_NODE" } } });
  });

  it("while draining: /healthz answers 503 and runs answer 503 E_SHUTTING_DOWN", async () => {
    const { c, port, events: ev } = await small({ handlers: "workers" });
    // A holds the drain open with a request in flight; B is mid-request when the server
    // closes (its headers read, as the 100 Continue shows), so it stays open to ask.
    const a = new RawConnection(port);
    const b = new RawConnection(port);
    try {
      const started = waitFor(ev, "attemptStarted");
      a.write(rawRequest("POST", "/v1/run/sleep", '{"ms":60000}'));
      b.write(rawRequest("POST", "/v1/run/echo", "", { "content-length": 1, expect: "100-continue" }));
      await started;
      expect((await b.next()).status).toBe(100);
      const closed = c.close();
      b.write("1" + rawRequest("GET", "/healthz"));
      const refused = await b.next();
      expect(refused.status).toBe(503);
      expect(JSON.parse(refused.body).error.code).toBe("E_SHUTTING_DOWN");
      const health = await b.next();
      expect(health.status).toBe(503);
      expect(JSON.parse(health.body)).toEqual({ ok: false, draining: true });
      a.socket.destroy(); // cancels the sleep, so the drain ends
      await closed;
    } finally {
      a.socket.destroy();
      b.socket.destroy();
    }
  });
});
