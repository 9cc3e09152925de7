/**
 * Connecting to Redis at start. `--redis` pointing at a port where nothing listens (Redis
 * down, a wrong port): the start fails with E_UNAVAILABLE naming the URL (without its
 * password) and the flag, not with ioredis's bare "Connection is closed." and a stack
 * trace. And a password in the URL never reaches the logs.
 */
import { describe, expect, it } from "vitest";
import { createCluster, type CrewError } from "crew";
import { CrewChild } from "./helpers/crew-process.js";
import { CrewHost, HOST_HANDLERS } from "./helpers/crew-host.js";
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
});
