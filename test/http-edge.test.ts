/**
 * The HTTP front's edge, on real sockets: half-closed clients, a refusal that must reach
 * the client before the close, and a drain that keeps answering health checks.
 */
import { connect, type Socket } from "node:net";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { type Cluster, type ClusterOptions, createCluster } from "crew";
import { LogCapture } from "./helpers/cluster.js";

const BIG = fileURLToPath(new URL("./fixtures/unread", import.meta.url));
const clusters: Cluster[] = [];
afterEach(async () => {
  await Promise.all(clusters.splice(0).map((c) => c.close()));
});

async function start(options: ClusterOptions = {}): Promise<{ cluster: Cluster; port: number }> {
  const cluster = await createCluster({ handlers: "workers", threads: 1, logLevel: "silent", drainTimeoutMs: 60_000, ...options });
  clusters.push(cluster);
  const { httpPort } = await cluster.listen({ port: 0, httpPort: 0 });
  return { cluster, port: httpPort! };
}

/** A raw socket that collects everything the server sends until it closes. */
function raw(port: number): { socket: Socket; text: () => string; closed: Promise<void> } {
  const socket = connect(port, "127.0.0.1");
  let text = "";
  socket.setEncoding("utf8");
  socket.on("data", (chunk: string) => (text += chunk));
  socket.on("error", () => {});
  const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
  return { socket, text: () => text, closed };
}

function post(path: string, body: string): string {
  return `POST ${path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
}

describe("a client that half-closes after its requests", () => {
  it("gets every response, and the socket closes after the last one", async () => {
    const { port } = await start();
    const c = raw(port);
    c.socket.write(post("/v1/run/sleep", '{"ms":100}') + post("/v1/run/echo", '"second"'));
    c.socket.end(); // shutdown(SHUT_WR)
    await c.closed;
    // A final response for each (a 102 Processing may come first: the probe of onPeerEnd).
    const statuses = [...c.text().matchAll(/HTTP\/1\.1 (\d+)/g)].map((m) => m[1]).filter((code) => code !== "102");
    expect(statuses).toEqual(["200", "200"]);
    expect(c.text()).toContain('{"result":{"slept":100}');
    expect(c.text()).toContain('{"result":"second"');
  });
});

describe("a client that hangs up", () => {
  it("has its request cancelled, with a debug line", async () => {
    const logs = new LogCapture("debug");
    const { port } = await start({ logger: logs.logger });
    const abort = new AbortController();
    const call = fetch(`http://127.0.0.1:${port}/v1/run/sleep`, { method: "POST", headers: { "content-type": "application/json" }, body: '{"ms":60000}', signal: abort.signal }).catch((e: unknown) => e);
    while ((await clusters[0]!.status()).requests.active === 0) await new Promise((r) => setImmediate(r));
    abort.abort();
    await call;
    const line = await logs.waitFor("client disconnected: cancelling its requests");
    expect(line.requestId).toEqual(expect.any(String));
    while ((await clusters[0]!.status()).requests.active > 0) await new Promise((r) => setImmediate(r));
    expect((await clusters[0]!.status()).requests.failed).toBe(1);
  });
});

describe("clients that do not read their responses", () => {
  it("are cut once the responses unread across connections pass maxPendingBytes, and a reading client is served", async () => {
    const MB = 1024 * 1024;
    const logs = new LogCapture();
    const { port } = await start({ handlers: BIG, threads: 2, maxPendingBytes: 16 * MB, logger: logs.logger });
    const idle = Array.from({ length: 8 }, () => raw(port));
    for (const c of idle) {
      c.socket.pause(); // reads nothing
      c.socket.write(post("/v1/run/big", JSON.stringify({ n: 12 * MB })));
    }
    const cut = await logs.waitFor("replies unread across connections over maxPendingBytes: cutting the connection holding the most");
    expect(cut.unreadTotal).toBeGreaterThan(16 * MB);
    const res = await fetch(`http://127.0.0.1:${port}/v1/run/big`, { method: "POST", headers: { "content-type": "application/json" }, body: '{"n":5}' });
    expect(await res.json()).toMatchObject({ result: "xxxxx" });
    // Reading again: a cut connection closes without its whole response; the others get theirs.
    for (const c of idle) {
      c.socket.resume();
      c.socket.end();
    }
    await Promise.all(idle.map((c) => c.closed));
    const whole = idle.map((c) => c.text().startsWith("HTTP/1.1 200") && c.text().endsWith("}}"));
    expect(whole).toContain(false);
  });
});

describe("a client that pipelines requests and reads nothing", () => {
  it("is cut once the responses waiting behind its first one pass maxPendingBytes (they have no socket yet)", async () => {
    const MB = 1024 * 1024;
    const logs = new LogCapture();
    const { port } = await start({ handlers: BIG, threads: 2, maxPendingBytes: 16 * MB, logger: logs.logger });
    const greedy = raw(port);
    greedy.socket.pause(); // reads nothing
    greedy.socket.write(Array.from({ length: 8 }, () => post("/v1/run/big", JSON.stringify({ n: 4 * MB }))).join(""));
    const cut = await logs.waitFor("replies unread across connections over maxPendingBytes: cutting the connection holding the most");
    expect(cut.unreadTotal).toBeGreaterThan(16 * MB);
    greedy.socket.resume();
    await greedy.closed;
    // Cut before its last response was whole.
    expect(greedy.text().endsWith("}}")).toBe(false);
  });
});

describe("a chunked body that never ends", () => {
  it("gets its 413 before the connection closes, every time", async () => {
    const { port } = await start({ maxFrameBytes: 4096 });
    for (let round = 0; round < 10; round++) {
      const c = raw(port);
      c.socket.write("POST /v1/run/echo HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n");
      const chunk = `10000\r\n${"x".repeat(0x10000)}\r\n`;
      let writing = true;
      void (async () => {
        while (writing && !c.socket.destroyed) {
          if (!c.socket.write(chunk)) await new Promise((r) => c.socket.once("drain", r).once("close", r));
        }
      })();
      await c.closed;
      writing = false;
      expect(c.text()).toMatch(/^HTTP\/1\.1 413/);
      expect(c.text()).toContain("E_FRAME_TOO_LARGE");
    }
  });
});

describe("the queue's fair sharing", () => {
  it("lets a normal HTTP client in while greedy pipelining connections fill the queue", async () => {
    const { cluster, port } = await start({ maxQueue: 20, nodePipeline: 0 });
    const greedy = [0, 1, 2].map(() => raw(port));
    for (const g of greedy) g.socket.write(post("/v1/run/sleep", '{"ms":50}').repeat(15));
    while (!(cluster.queueLength >= 20)) await new Promise((r) => setImmediate(r));
    const res = await fetch(`http://127.0.0.1:${port}/v1/run/echo`, { method: "POST", headers: { "content-type": "application/json" }, body: '"normal"' });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { result: string }).result).toBe("normal");
    for (const g of greedy) g.socket.end();
    await Promise.all(greedy.map((g) => g.closed));
    const text = greedy.map((g) => g.text()).join("");
    expect(text).toContain("more than its share");
  });
});

describe("while the cluster drains", () => {
  it("keeps answering /healthz (503), /v1/status and /metrics on new connections; runs answer E_SHUTTING_DOWN", async () => {
    const { cluster, port } = await start();
    const base = `http://127.0.0.1:${port}`;
    const abort = new AbortController();
    const held = cluster.call("sleep", { ms: 60_000 }, { signal: abort.signal });
    while ((await cluster.status()).requests.active === 0) await new Promise((r) => setImmediate(r));
    const closed = cluster.close();
    while (!cluster.draining) await new Promise((r) => setImmediate(r));
    const health = await fetch(`${base}/healthz`);
    expect(health.status).toBe(503);
    expect(await health.json()).toEqual({ ok: false, draining: true });
    const status = await fetch(`${base}/v1/status`);
    expect(status.status).toBe(200);
    expect(((await status.json()) as { draining: boolean }).draining).toBe(true);
    expect((await fetch(`${base}/metrics`)).status).toBe(200);
    const run = await fetch(`${base}/v1/run/echo`, { method: "POST", headers: { "content-type": "application/json" }, body: "1" });
    expect(run.status).toBe(503);
    expect(((await run.json()) as { error: { code: string } }).error.code).toBe("E_SHUTTING_DOWN");
    abort.abort();
    await held;
    await closed;
    await expect(fetch(`${base}/healthz`)).rejects.toThrow();
  });
});
