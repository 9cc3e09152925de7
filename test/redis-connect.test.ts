/**
 * Connecting to Redis at start. `--redis` pointing at a port where nothing listens (Redis
 * down, a wrong port): the start fails with E_UNAVAILABLE naming the URL (without its
 * password) and the flag, not with ioredis's bare "Connection is closed." and a stack
 * trace. A password in the URL never reaches the logs. And a host id is held by one live
 * host at a time (a lease in Redis: src/store/redis/host-lease.ts).
 */
import { Redis } from "ioredis";
import { describe, expect, it } from "vitest";
import { createCluster, type CrewError } from "crew";
import { CrewChild } from "./helpers/crew-process.js";
import { CrewHost, HOST_HANDLERS } from "./helpers/crew-host.js";
import { NdjsonSocket } from "./helpers/ndjson-socket.js";
import { freePort, REDIS_SKIP, RedisServer } from "./helpers/redis-server.js";

describe("Redis refusing connections at start", () => {
  it("createCluster rejects with E_UNAVAILABLE naming the URL", async () => {
    const port = await freePort();
    const err = (await createCluster({ handlers: HOST_HANDLERS, threads: 0, processes: 0, redis: `redis://:s3cret@127.0.0.1:${port}`, logLevel: "silent" }).catch((e: unknown) => e)) as CrewError;
    expect(err.code).toBe("E_UNAVAILABLE");
    expect(err.message).toContain(`127.0.0.1:${port}`);
    expect(err.message).toContain("ECONNREFUSED");
    expect(err.message).not.toContain("s3cret");
  });

  it("crew start exits 1 with one line naming the code, the URL and --redis", async () => {
    const port = await freePort();
    const crew = new CrewChild(["start", "--handlers", HOST_HANDLERS, "--threads", "0", "--processes", "0", "--redis", `redis://127.0.0.1:${port}`, "--port", "0", "--http-port", "0", "--log-level", "silent"]);
    const { code } = await crew.exited;
    expect(code).toBe(1);
    const stderr = crew.stderr.join("");
    expect(stderr).toMatch(new RegExp(`^crew: E_UNAVAILABLE: .*redis://127\\.0\\.0\\.1:${port}.*--redis.*\\n$`));
  });
});

describe.skipIf(REDIS_SKIP !== null)("a password in the --redis URL", () => {
  it("is not written to the logs", async () => {
    // A Redis without requirepass accepts a client that sends a password (ioredis only warns).
    const server = await RedisServer.start();
    const url = `redis://:s3cret@127.0.0.1:${server.port}`;
    const host = await CrewHost.start("pw", url, `pw${process.pid}`, ["--threads", "0", "--processes", "0"]);
    try {
      const joined = await host.waitFor("joined the cluster through Redis");
      expect(joined.redis).toBe(`redis://:***@127.0.0.1:${server.port}`);
      expect(JSON.stringify(host.lines) + host.stderr.join("")).not.toContain("s3cret");
    } finally {
      await host.kill();
      await server.stop();
    }
  });
});

describe.skipIf(REDIS_SKIP !== null)("two hosts given the same --host-id", () => {
  it("the second is refused while the first lives (they would read each other's replies), and starts once it is dead", async () => {
    const server = await RedisServer.start();
    const cluster = `dup${process.pid}`;
    const first = await CrewHost.start("w", server.url, cluster, ["--threads", "1", "--processes", "0"]);
    let second: CrewChild | null = null;
    try {
      second = new CrewChild(["start", "--handlers", HOST_HANDLERS, "--redis", server.url, "--cluster", cluster, "--host-id", "w", "--threads", "1", "--processes", "0", "--port", "0", "--http-port", "0", "--log-level", "silent"]);
      const { code } = await second.exited;
      expect(code).toBe(1);
      expect(second.stderr.join("")).toMatch(/^crew: E_INVALID_OPTION: .*--host-id w is in use by a live host/);
      // A host SIGKILLed and started again under its id waits out the dead one's last heartbeat.
      await first.kill();
      const again = await CrewHost.start("w", server.url, cluster, ["--threads", "1", "--processes", "0"]);
      await again.kill();
    } finally {
      if (second?.running) second.signal("SIGKILL");
      await first.kill();
      await server.stop();
    }
  });

  it("of two hosts started at once with one id, exactly one joins and the other is refused", async () => {
    // In one process, so both reach Redis within microseconds of each other: a check of
    // the id followed by a heartbeat let both through here, where the lease's SET NX lets one.
    const server = await RedisServer.start();
    const options = { handlers: HOST_HANDLERS, threads: 0, processes: 0, redis: server.url, cluster: `twins${process.pid}`, hostId: "w", logLevel: "silent" } as const;
    try {
      const outcomes = await Promise.allSettled([createCluster(options), createCluster(options)]);
      const joined = outcomes.filter((o) => o.status === "fulfilled");
      expect(joined).toHaveLength(1);
      const refused = outcomes.find((o): o is PromiseRejectedResult => o.status === "rejected")!.reason as CrewError;
      expect(refused.code).toBe("E_INVALID_OPTION");
      expect(refused.message).toMatch(/--host-id w is in use by a live host/);
      await (joined[0] as PromiseFulfilledResult<Awaited<ReturnType<typeof createCluster>>>).value.close();
    } finally {
      await server.stop();
    }
  });

  it("a host stopped cleanly gives its id back; one that missed its heartbeats while another took its id retires: refuses, stops reading the id's replies, /healthz 503", async () => {
    const server = await RedisServer.start();
    const redis = new Redis(server.url, { maxRetriesPerRequest: null });
    const cluster = `lease${process.pid}`;
    const lease = `crew:{${cluster}}:lease:w`;
    try {
      const clean = await CrewHost.start("w", server.url, cluster, ["--threads", "1", "--processes", "0"]);
      expect(await redis.get(lease)).not.toBeNull();
      clean.signal("SIGTERM");
      expect((await clean.exited).code).toBe(0);
      expect(await redis.get(lease)).toBeNull(); // a restart under "w" goes on at once

      const stopped = await CrewHost.start("w", server.url, cluster, ["--threads", "1", "--processes", "0", "--host-timeout-ms", "300"]);
      const held = await redis.get(lease);
      stopped.signal("SIGSTOP"); // its lease expires 300 ms after its last heartbeat
      const taker = await CrewHost.start("w", server.url, cluster, ["--threads", "1", "--processes", "0", "--host-timeout-ms", "300"]);
      expect(await redis.get(lease)).not.toBe(held);
      const from = stopped.lines.length;
      stopped.signal("SIGCONT");
      const line = await stopped.waitFor("another host took this host's --host-id while this one missed its heartbeats: this host stops taking work from the cluster; restart it (give each host its own --host-id)", {}, from);
      expect(line).toMatchObject({ level: 50, host: "w" });
      const taken = await redis.get(lease);
      expect(taken).not.toBe(held); // the stopped host did not take it back
      const old = await NdjsonSocket.connect(stopped.port);
      expect(await old.request({ id: 1, handler: "echo", payload: "refused" })).toMatchObject({ ok: false, error: { code: "E_UNAVAILABLE" } });
      const health = await fetch(`http://127.0.0.1:${stopped.httpPort}/healthz`);
      expect(health.status).toBe(503);
      expect(await health.json()).toEqual({ ok: false, retired: true });
      old.socket.destroy();
      // The id's replies all reach the host that holds it now: none is read away by the old one.
      const s = await NdjsonSocket.connect(taker.port);
      const replies = await Promise.all(Array.from({ length: 200 }, (_, i) => s.request({ id: i, handler: "echo", payload: i })));
      replies.forEach((reply, i) => expect(reply).toMatchObject({ ok: true, result: i }));
      s.socket.destroy();
      await Promise.all([stopped.kill(), taker.kill()]);
    } finally {
      redis.disconnect();
      await server.stop();
    }
  });
});
