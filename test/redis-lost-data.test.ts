/**
 * Redis that comes back without its data (restarted with no persistence, as the hosts'
 * start-up warning says can happen, or flushed): what it held is lost, as docs/redis.md
 * says, but the cluster must keep serving new requests. The shared queue's consumer
 * groups were lost with the data; a host that only created them at start pulled nothing
 * ever again (every pull failed NOGROUP), and every new request timed out.
 */
import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { CrewHost } from "./helpers/crew-host.js";
import { NdjsonSocket } from "./helpers/ndjson-socket.js";
import { REDIS_SKIP, RedisServer } from "./helpers/redis-server.js";

describe.skipIf(REDIS_SKIP !== null)("Redis that lost its data", () => {
  let server: RedisServer;
  let hosts: CrewHost[] = [];
  let sockets: NdjsonSocket[] = [];

  beforeAll(async () => {
    // No AOF, no snapshots: a restart comes back empty.
    server = await RedisServer.start();
  });
  afterAll(async () => {
    await server?.stop();
  });
  afterEach(async () => {
    for (const s of sockets) s.socket.destroy();
    await Promise.all(hosts.map((h) => h.kill()));
    hosts = [];
    sockets = [];
  });

  async function start(id: string, threads: number, cluster: string): Promise<CrewHost> {
    const host = await CrewHost.start(id, server.url, cluster, ["--threads", String(threads), "--processes", "0"]);
    hosts.push(host);
    return host;
  }

  /** Host a accepts (no nodes), host b runs; one request has gone through b. */
  async function twoHosts(cluster: string): Promise<{ a: CrewHost; b: CrewHost; s: NdjsonSocket }> {
    const a = await start("a", 0, cluster);
    const b = await start("b", 1, cluster);
    const s = await NdjsonSocket.connect(a.port);
    sockets.push(s);
    expect(await s.request({ id: "before", handler: "echo", payload: 1 })).toMatchObject({ ok: true, result: 1, meta: { host: "b" } });
    return { a, b, s };
  }

  it("restarted empty: the hosts reconnect and new requests run again", async () => {
    const { a, b, s } = await twoHosts(`lost${process.pid}a`);
    const [fromA, fromB] = [a.lines.length, b.lines.length];
    await server.kill("SIGKILL");
    await a.waitFor("redis connection error", { connection: "crew-a-cmd" }, fromA);
    await b.waitFor("redis connection error", { connection: "crew-b-cmd" }, fromB);
    await server.restart();
    await a.waitFor("redis connection back", { connection: "crew-a-cmd" }, fromA);
    await b.waitFor("redis connection back", { connection: "crew-b-cmd" }, fromB);
    const reply = await s.request({ id: "after", handler: "echo", payload: 2, timeoutMs: 20_000 });
    expect(reply).toMatchObject({ ok: true, result: 2, meta: { host: "b" } });
  });

  it("flushed while connected: the hosts create the shared queue again and serve", async () => {
    const { s } = await twoHosts(`lost${process.pid}b`);
    const redis = new Redis(server.url);
    await redis.flushall();
    redis.disconnect();
    const reply = await s.request({ id: "after", handler: "echo", payload: 2, timeoutMs: 20_000 });
    expect(reply).toMatchObject({ ok: true, result: 2, meta: { host: "b" } });
  });
});
