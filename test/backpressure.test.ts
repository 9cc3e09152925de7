/**
 * A client that sends much and reads nothing is slowed by TCP, not buffered without
 * bound: the primary stops reading from it, its requests in flight stay bounded by
 * maxConnectionInflight, and everything completes once it reads again.
 */
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type Cluster, createCluster } from "crew";
import { type Id, SocketPool } from "./helpers/ndjson-socket.js";

const HANDLERS = fileURLToPath(new URL("./fixtures/runtime/handlers", import.meta.url));
const CAP = 16;
const REQUESTS = 5000;
// 8 KiB payloads: 40 MB each way, far more than the kernel's socket buffers can hold.
const PAYLOAD = "x".repeat(8 * 1024);

const sockets = new SocketPool();
afterEach(() => sockets.closeAll());

/** One turn of the event loop: lets sockets and nodes make progress between status polls. */
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

describe("a client that does not read its replies", () => {
  let cluster: Cluster;
  let port: number;
  beforeAll(async () => {
    cluster = await createCluster({ handlers: HANDLERS, threads: 1, maxConnectionInflight: CAP, logLevel: "silent" });
    ({ port } = await cluster.listen({ port: 0 }));
  });
  afterAll(() => cluster?.close());

  it("is read no further while its replies back up, stays within maxConnectionInflight, and completes once it reads", async () => {
    const client = await sockets.open(port);
    client.socket.pause();
    const frames = Array.from({ length: REQUESTS }, (_, i) => ({ id: i % 2 ? i : `s${i}`, handler: "echo", payload: { i, PAYLOAD } }));
    const frameBytes = Buffer.byteLength(JSON.stringify(frames[0]) + "\n");
    client.send(...frames);

    // The receiver pauses at CAP in flight, but finishes the chunk it is reading: frames of
    // one 64 KiB read (plus one split across reads) may come on top. That is the bound.
    const bound = CAP + Math.ceil(65536 / frameBytes) + 1;
    let maxActive = 0;
    let accepted = -1;
    // No event says "the primary stopped reading": poll until `accepted` has not moved for
    // 50 turns of the event loop, each with a status round trip to the node.
    for (let still = 0; still < 50; ) {
      const { requests } = await cluster.status();
      maxActive = Math.max(maxActive, requests.active);
      still = requests.accepted === accepted ? still + 1 : 0;
      accepted = requests.accepted;
      await turn();
    }
    expect(maxActive).toBeLessThanOrEqual(bound);
    // The rest is still in the kernel or the client: the primary did not read it into memory.
    expect(accepted).toBeLessThan(REQUESTS / 2);
    expect(client.replies).toHaveLength(0);

    // Reading again: everything completes, each id exactly once, still within the bound.
    let done = false;
    const watch = (async () => {
      while (!done) {
        maxActive = Math.max(maxActive, (await cluster.status()).requests.active);
        await turn();
      }
    })();
    client.socket.resume();
    const replies = await client.waitForReplies(REQUESTS).finally(() => (done = true));
    await watch;
    const seen = new Set<Id>();
    for (const r of replies) {
      expect(r.ok).toBe(true);
      expect(seen.has(r.id)).toBe(false);
      seen.add(r.id);
      const { i } = r.result as { i: number };
      expect(r.id).toBe(frames[i]!.id);
    }
    expect(seen.size).toBe(REQUESTS);
    expect(maxActive).toBeLessThanOrEqual(bound);
    expect((await cluster.status()).requests).toMatchObject({ active: 0, accepted: REQUESTS });
  });

  it("does not hold up other clients meanwhile", async () => {
    const stuck = await sockets.open(port);
    stuck.socket.pause();
    stuck.send(...Array.from({ length: 2000 }, (_, i) => ({ id: i, handler: "echo", payload: PAYLOAD })));
    const other = await sockets.open(port);
    for (let i = 0; i < 20; i++) {
      expect(await other.request({ id: `o${i}`, handler: "echo", payload: i })).toMatchObject({ ok: true, result: i });
    }
  });
});
