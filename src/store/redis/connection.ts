/**
 * Connections to Redis, set up never to hang a request: ioredis's offline queue is off
 * (a command sent while disconnected fails at once instead of waiting for a reconnect),
 * commands time out, nothing is resent after a reconnect (a script that may have run is
 * not run twice), and the client reconnects by itself forever, backing off to 1 s.
 *
 * Why ioredis over node-redis: ioredis 5 has the switches above as plain options
 * (enableOfflineQueue, commandTimeout, autoResendUnfulfilledCommands, retryStrategy),
 * typed stream commands, and is what BullMQ runs on, so operators already know its
 * behaviour; node-redis 4 can disable its offline queue too, but command timeouts need an
 * AbortSignal per command there.
 */
import { Redis } from "ioredis";
import type { Logger } from "pino";
import { UnavailableError } from "../../errors.js";
import { withoutPassword } from "./redis-url.js";

export interface RedisConnections {
  /** Scripts and plain commands, with a timeout. */
  cmd: Redis;
  /** Pub/sub only (a subscribed connection takes no other commands). */
  sub: Redis;
  /** Blocking reads of this host's reply stream (XREAD BLOCK), without a command timeout. */
  blocking: Redis;
}

/** Command timeout of the command connection, ms: a hung (SIGSTOPped) Redis must not hang requests. */
export const COMMAND_TIMEOUT_MS = 2000;

function open(url: string, name: string, log: Logger, commandTimeout: number | undefined): Redis {
  const redis = new Redis(url, {
    lazyConnect: true,
    enableOfflineQueue: false,
    autoResendUnfulfilledCommands: false,
    maxRetriesPerRequest: 0,
    commandTimeout,
    connectionName: name,
    retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 5), 1000),
  });
  let down = false;
  redis.on("error", (err: Error) => {
    if (!down) log.warn({ err: err.message, connection: name }, "redis connection error");
    down = true;
  });
  redis.on("ready", () => {
    if (down) log.info({ connection: name }, "redis connection back");
    down = false;
  });
  return redis;
}

/**
 * Opens the three connections and waits until they are ready.
 * Throws UnavailableError (E_UNAVAILABLE) naming the URL, without its password, and the
 * socket's error (ECONNREFUSED …) when Redis cannot be reached at start: the cluster
 * refuses to start without it. ioredis itself only rejects with "Connection is closed.".
 */
export async function connectRedis(url: string, host: string, log: Logger): Promise<RedisConnections> {
  const conns: RedisConnections = {
    cmd: open(url, `crew-${host}-cmd`, log, COMMAND_TIMEOUT_MS),
    sub: open(url, `crew-${host}-sub`, log, undefined),
    blocking: open(url, `crew-${host}-read`, log, undefined),
  };
  let first: Error | null = null;
  const note = (err: Error): void => void (first ??= err);
  for (const r of Object.values(conns) as Redis[]) r.on("error", note);
  try {
    await Promise.all(Object.values(conns).map((r: Redis) => r.connect()));
  } catch (err) {
    closeRedis(conns);
    const why = first ?? (err as Error);
    throw new UnavailableError(`Redis at ${withoutPassword(url)} cannot be reached (--redis): ${why.message}`, { cause: why });
  } finally {
    for (const r of Object.values(conns) as Redis[]) r.off("error", note);
  }
  return conns;
}

export function closeRedis(conns: RedisConnections): void {
  for (const r of Object.values(conns) as Redis[]) r.disconnect(false);
}

/**
 * Reads Redis's persistence settings and returns a warning for each way acknowledged work
 * could be lost: no AOF (a Redis restart loses everything since the last RDB snapshot),
 * an AOF fsynced less than every second, or an eviction policy that may delete keys.
 * CONFIG may be renamed or refused on managed Redis: then one warning says so.
 */
export async function persistenceWarnings(redis: Redis): Promise<string[]> {
  let config: string[];
  try {
    const a = (await redis.config("GET", "appendonly")) as string[];
    const f = (await redis.config("GET", "appendfsync")) as string[];
    const m = (await redis.config("GET", "maxmemory-policy")) as string[];
    config = [...a, ...f, ...m];
  } catch (err) {
    return [`cannot read Redis's persistence settings (CONFIG GET refused: ${(err as Error).message}); make sure appendonly is yes and maxmemory-policy is noeviction`];
  }
  const get = (name: string) => config[config.indexOf(name) + 1];
  const out: string[] = [];
  if (get("appendonly") !== "yes") out.push("Redis has appendonly no: a Redis restart loses accepted requests, checkpoints and replies since the last snapshot (set appendonly yes)");
  else if (get("appendfsync") === "no") out.push("Redis has appendfsync no: an OS crash can lose tens of seconds of accepted work (use everysec or always)");
  const policy = get("maxmemory-policy");
  if (policy !== "noeviction") out.push(`Redis has maxmemory-policy ${policy}: under memory pressure it may evict queued requests and checkpoints (set noeviction)`);
  return out;
}
