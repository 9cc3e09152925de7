/**
 * A real redis-server for the several-hosts tests, started by the test on a free port of
 * its own (never the shared 127.0.0.1:6379), in a temporary directory, so a test can
 * SIGKILL it, SIGSTOP it, and start it again on the same port and the same files.
 *
 * When no redis-server is on PATH, `REDIS_SKIP` holds the reason (naming the Debian
 * package) and the suites use `describe.skipIf(REDIS_SKIP !== null)`.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { reap } from "./reaper.js";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

const found = spawnSync("redis-server", ["--version"], { encoding: "utf8" });

/** Null when redis-server runs here; else why the Redis tests are skipped. */
export const REDIS_SKIP: string | null =
  found.status === 0 ? null : "redis-server is not installed: install the Debian package `redis-server` (apt-get install redis-server) to run the several-hosts tests";

if (REDIS_SKIP) console.warn(`skipping: ${REDIS_SKIP}`);

export interface RedisServerOptions {
  /** "no" (default: nothing on disk, fastest), "everysec" or "always" (AOF fsync policy). */
  appendfsync?: "no" | "everysec" | "always";
  /** maxmemory-policy; default noeviction. */
  maxmemoryPolicy?: string;
}

/** Asks the OS for a free TCP port on loopback. */
export async function freePort(): Promise<number> {
  const [port] = await freePorts(1);
  return port!;
}

/**
 * Asks the OS for `count` free TCP ports on loopback, all different: each is held until
 * every one is picked (two calls of freePort() in a row can get the same port back, and a
 * primary given it for both --port and --http-port refuses to start).
 */
export async function freePorts(count: number): Promise<number[]> {
  const servers = Array.from({ length: count }, () => createServer().listen(0, "127.0.0.1"));
  await Promise.all(servers.map((server) => once(server, "listening")));
  const ports = servers.map((server) => (server.address() as AddressInfo).port);
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  return ports;
}

export class RedisServer {
  readonly dir = mkdtempSync(join(tmpdir(), "crew-redis-"));
  port = 0;
  #child: ChildProcess | null = null;
  readonly #options: RedisServerOptions;

  private constructor(options: RedisServerOptions) {
    this.#options = options;
  }

  /** Starts a redis-server on a free port; resolves once it accepts connections. */
  static async start(options: RedisServerOptions = {}): Promise<RedisServer> {
    const server = new RedisServer(options);
    // A port found free can be taken before redis binds it: try a few.
    for (let i = 0; ; i++) {
      server.port = await freePort();
      try {
        await server.#spawn();
        return server;
      } catch (err) {
        if (i >= 4) throw err;
      }
    }
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  get pid(): number | null {
    return this.#child?.pid ?? null;
  }

  get running(): boolean {
    return this.#child !== null;
  }

  /** Sends `signal` and resolves when the process has exited (for SIGKILL/SIGTERM). */
  async kill(signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    const child = this.#child;
    if (!child) return;
    const exited = once(child, "exit");
    child.kill(signal);
    await exited;
  }

  /** Starts it again on the same port and directory (an AOF, if any, is loaded back). */
  async restart(): Promise<void> {
    await this.kill("SIGKILL");
    await this.#spawn();
  }

  /** Stops it and removes its files. */
  async stop(): Promise<void> {
    await this.kill("SIGKILL");
    rmSync(this.dir, { recursive: true, force: true });
  }

  async #spawn(): Promise<void> {
    const fsync = this.#options.appendfsync ?? "no";
    const args = [
      "--port", String(this.port), "--bind", "127.0.0.1", "--dir", this.dir, "--save", "",
      "--appendonly", fsync === "no" ? "no" : "yes", "--appendfsync", fsync === "no" ? "everysec" : fsync,
      "--maxmemory-policy", this.#options.maxmemoryPolicy ?? "noeviction",
    ];
    const child = reap(spawn("redis-server", args, { stdio: ["ignore", "pipe", "pipe"] }));
    let out = "";
    await new Promise<void>((resolve, reject) => {
      const onData = (chunk: Buffer) => {
        out += chunk.toString();
        if (out.includes("Ready to accept connections")) {
          child.stdout!.off("data", onData);
          child.off("exit", onExit);
          resolve();
        }
      };
      const onExit = (code: number | null) => reject(new Error(`redis-server exited (${code}) before it was ready:\n${out.slice(-2000)}`));
      child.stdout!.on("data", onData);
      child.once("exit", onExit);
    });
    child.stdout!.resume();
    child.stderr!.resume();
    child.once("exit", () => {
      if (this.#child === child) this.#child = null;
    });
    this.#child = child;
  }
}
