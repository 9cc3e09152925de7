/**
 * The lease on a host id. Two live hosts with one `--host-id` would consume each other's
 * replies (one reply stream per id, entries deleted once read) and heartbeat as one, and
 * their clients' replies would get lost. So a host holds its id by a lease in Redis:
 * `crew:{NAME}:lease:ID`, holding a random token, taken with `SET NX PX` (atomic: of two
 * hosts starting at once with one id, exactly one gets it) and renewed with each
 * heartbeat for one host timeout more, only while it still holds this host's token.
 *
 * A host that dies leaves its lease to expire one host timeout after its last heartbeat
 * (a restart under a fixed id waits that out once); a host that stops cleanly releases
 * it, so a restart goes on at once. A host that missed its heartbeats for a host timeout
 * (SIGSTOP, cut off from Redis) may find on its next one that another host took the id
 * meanwhile: renew() then says so, and the host retires: it stops taking work and reading
 * the id's replies, and refuses every request (redis-worker.ts, redis-host.ts).
 * The pattern is Redis's single-instance lock (https://redis.io/docs/manual/patterns/distributed-locks/).
 */
import { randomBytes } from "node:crypto";
import type { Redis } from "ioredis";
import { InvalidOptionError } from "../../errors.js";
import type { Keys } from "./keys.js";
import { runScript, script } from "./scripts.js";

/** KEYS: lease. ARGV: token, ttl ms. 1 when renewed (or taken again, if it expired), 0 when another token holds it. */
const RENEW = script(`
local held = redis.call('GET', KEYS[1])
if held and held ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
`);

/** KEYS: lease. ARGV: token. Deletes the lease only if this token still holds it. */
const RELEASE = script(`
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
`);

/** Extra wait past a held lease's time to live before trying it again, ms (clock ticks, network). */
const EXPIRY_SLACK_MS = 50;

export class HostLease {
  readonly #redis: Redis;
  readonly #key: string;
  readonly #token = randomBytes(12).toString("base64url");

  /** `ttlMs`: how long the lease lives past each renewal, ms (the host timeout). */
  constructor(
    redis: Redis,
    readonly keys: Keys,
    readonly hostId: string,
    readonly ttlMs: number,
  ) {
    this.#redis = redis;
    this.#key = keys.lease(hostId);
  }

  /**
   * Takes the lease. A lease still held is waited out once (a host that died under this
   * id); held again after that, it belongs to a live host. Throws InvalidOptionError
   * naming `--host-id` then, and the ioredis error when Redis cannot be reached.
   */
  async claim(): Promise<void> {
    if (await this.#take()) return;
    const ttl = await this.#redis.pttl(this.#key);
    if (ttl > 0) await new Promise((resolve) => setTimeout(resolve, ttl + EXPIRY_SLACK_MS));
    if (await this.#take()) return;
    throw new InvalidOptionError(
      `--host-id ${this.hostId} is in use by a live host of cluster ${JSON.stringify(this.keys.cluster)} on this Redis: give each host its own --host-id (the default, hostname-pid, is unique)`,
    );
  }

  /** Renews the lease for ttlMs more; false when another host holds the id now. */
  async renew(): Promise<boolean> {
    return (await runScript(this.#redis, RENEW, [this.#key], [this.#token, this.ttlMs])) === 1;
  }

  /** Gives the lease back if this host still holds it; Redis errors are the caller's. */
  async release(): Promise<void> {
    await runScript(this.#redis, RELEASE, [this.#key], [this.#token]);
  }

  async #take(): Promise<boolean> {
    return (await this.#redis.set(this.#key, this.#token, "PX", this.ttlMs, "NX")) === "OK";
  }
}
