/**
 * The shared queue on Redis Streams, one call per step of a request's life: enqueue
 * (accepting host), pull and takeover (running host), heartbeat, fenced checkpoint and
 * fenced finish. Each step is one Lua script (scripts.ts), so no step is half-applied.
 */
import type { Redis } from "ioredis";
import type { WireError } from "../../errors.js";
import type { ReplyMeta } from "../../protocol/frames.js";
import { type Band, bandOf, BANDS, GROUP, type Keys } from "./keys.js";
import { CHECKPOINT, CLAIM_LET_GO, ENQUEUE, FINISH, HEARTBEAT, LET_GO, PULL, runScript, TAKEOVER } from "./scripts.js";

/** A reply as kept in Redis; `json` is the result as JSON text. */
export type StoredReply = { ok: true; json: string; meta: ReplyMeta } | { ok: false; error: WireError; meta: ReplyMeta };

export type EnqueueResult =
  | { kind: "queued" }
  | { kind: "full" }
  | { kind: "conflict"; requestId: string }
  | { kind: "replay"; requestId: string; reply: StoredReply }
  | { kind: "join"; requestId: string };

export interface NewRequest {
  requestId: string;
  handler: string;
  /** The payload as JSON text (compared byte for byte for idempotency conflicts). */
  payloadJson: string;
  priority: number;
  /** Epoch ms. */
  deadline: number;
  idempotencyKey?: string | undefined;
}

/** A request this host now holds: run it as `attempt`, write with `fence`. */
export interface Claimed {
  requestId: string;
  band: Band;
  entryId: string;
  fence: string;
  attempt: number;
  handler: string;
  payloadJson: string;
  checkpoint: string | null;
  /** Epoch ms. */
  deadline: number;
  priority: number;
  acceptedBy: string;
  idempotencyKey: string | null;
  /** The host that held it before this claim (null for a first claim). */
  previousHolder: string | null;
}

/** How a finish went: answered now, answered already (by another writer), fenced (another claim holds it), or no such request. */
export type FinishResult = "answered" | "already" | "fenced" | "gone";

/** What the heartbeat refreshes: an attempt this host runs. */
export interface Held {
  requestId: string;
  band: Band;
  entryId: string;
  fence: string;
}

export interface SharedQueueOptions {
  /** Entries (queued or running) per band before enqueue answers "full". */
  maxQueue: number;
  /** How long a keyed request's reply is kept for reattachment, ms. */
  resultTtlMs: number;
  /** How long an unkeyed answered request is kept (refusing late writers), ms. */
  doneKeepMs?: number;
  /** Approximate cap of each host's reply stream (MAXLEN ~). */
  replyCap?: number;
}

/** What a host says of itself with each heartbeat: its nodes, and how many requests it holds. */
export interface HostInfo {
  nodes: Array<{ id: string; kind: string; state: string; inFlight: number }>;
  held: number;
}

export class SharedQueue {
  readonly #redis: Redis;
  readonly #keys: Keys;
  readonly #host: string;
  /** Where each band's walk of its pending list goes on at the next takeover ("0-0": from the start). */
  #takeoverCursors: string[] = [];
  readonly #options: Required<SharedQueueOptions>;

  constructor(redis: Redis, keys: Keys, host: string, options: SharedQueueOptions) {
    this.#redis = redis;
    this.#keys = keys;
    this.#host = host;
    this.#options = { doneKeepMs: 10_000, replyCap: 100_000, ...options };
  }

  /** Creates the consumer group on each band's stream (idempotent). */
  async ensureGroups(): Promise<void> {
    for (const band of BANDS) {
      try {
        await this.#redis.xgroup("CREATE", this.#keys.queue(band), GROUP, "0", "MKSTREAM");
      } catch (err) {
        if (!(err instanceof Error) || !err.message.startsWith("BUSYGROUP")) throw err;
      }
    }
  }

  /**
   * Puts a request on the shared queue, or finds the request already holding its
   * idempotency key (conflict, finished → replay, running → join its reply).
   */
  async enqueue(req: NewRequest): Promise<EnqueueResult> {
    const band = bandOf(req.priority);
    const key = req.idempotencyKey ?? "";
    const keep = Math.max(0, req.deadline - Date.now()) + (key ? this.#options.resultTtlMs : this.#options.doneKeepMs);
    const rkey = this.#keys.request(req.requestId);
    const out = (await runScript(this.#redis, ENQUEUE, [rkey, this.#keys.queue(band), key ? this.#keys.idempotency(key) : rkey], [
      req.requestId, band, this.#options.maxQueue, this.#host, req.handler, req.payloadJson, req.deadline, req.priority, key, keep, this.#keys.prefix,
    ])) as string[];
    switch (out[0]) {
      case "queued":
        return { kind: "queued" };
      case "full":
        return { kind: "full" };
      case "conflict":
        return { kind: "conflict", requestId: out[1]! };
      case "replay":
        return { kind: "replay", requestId: out[1]!, reply: JSON.parse(out[2]!) as StoredReply };
      default:
        return { kind: "join", requestId: out[1]! };
    }
  }

  /** Claims up to `count` new requests, highest band first. */
  async pull(count: number): Promise<Claimed[]> {
    if (count <= 0) return [];
    return claimed(await runScript(this.#redis, PULL, this.#keys.queues, [this.#host, count, this.#keys.prefix]));
  }

  /**
   * Claims up to `count` requests whose holder has not heartbeated for `minIdleMs`. Each
   * call walks a bounded stretch of each band's pending list, from where the last one
   * stopped (scripts.ts, TAKEOVER).
   */
  async takeover(count: number, minIdleMs: number): Promise<Claimed[]> {
    if (count <= 0) return [];
    const [cursors, out] = (await runScript(this.#redis, TAKEOVER, this.#keys.queues, [this.#host, count, minIdleMs, this.#keys.prefix, ...this.#takeoverCursors])) as [string[], unknown];
    this.#takeoverCursors = cursors;
    return claimed(out);
  }

  /**
   * Says this host is alive (its status `info` kept for `ttlMs`) and refreshes the entries
   * it still holds; returns the ids of the requests in `held` it no longer holds.
   */
  async heartbeat(held: Iterable<Held>, info: unknown, ttlMs: number): Promise<string[]> {
    const args: Array<string | number> = [this.#host, Date.now(), ttlMs, JSON.stringify(info), this.#keys.prefix];
    for (const h of held) args.push(h.band, h.entryId, h.requestId, h.fence);
    return (await runScript(this.#redis, HEARTBEAT, [this.#keys.hosts, this.#keys.hostInfo(this.#host)], args)) as string[];
  }

  /**
   * Lets go of a claim this host cannot run (scripts.ts, LET_GO): its attempt is not
   * counted, it is idle for `idleMs` at once, and the hosts hear of it on the work
   * channel. False when the claim was no longer this host's.
   */
  async letGo(claim: Claimed, idleMs: number): Promise<boolean> {
    const keys = [this.#keys.request(claim.requestId), this.#keys.queue(claim.band)];
    return (await runScript(this.#redis, LET_GO, keys, [claim.fence, this.#host, claim.entryId, idleMs, this.#keys.prefix, claim.band])) === 1;
  }

  /** Claims the entry another host let go of, unless a host claimed it since (scripts.ts, CLAIM_LET_GO). */
  async claimLetGo(band: Band, entryId: string, minIdleMs: number): Promise<Claimed[]> {
    return claimed(await runScript(this.#redis, CLAIM_LET_GO, [this.#keys.queue(band)], [this.#host, entryId, minIdleMs, this.#keys.prefix, band]));
  }

  /** Stores a checkpoint if `fence` still holds the request; false when refused. */
  async checkpoint(requestId: string, fence: string, state: string): Promise<boolean> {
    return (await runScript(this.#redis, CHECKPOINT, [this.#keys.request(requestId)], [fence, state])) === 1;
  }

  /**
   * Answers a request once: with `fence` from its holder, or with `fence` null from the
   * accepting host (cancel, deadline).
   */
  async finish(requestId: string, fence: string | null, reply: StoredReply, keyed: boolean): Promise<FinishResult> {
    const keep = keyed ? this.#options.resultTtlMs : this.#options.doneKeepMs;
    const out = await runScript(this.#redis, FINISH, [this.#keys.request(requestId)], [
      fence ?? "", JSON.stringify(reply), keep, this.#options.replyCap, this.#keys.prefix, this.#host, requestId,
    ]);
    return out === 1 ? "answered" : out === 0 ? "already" : out === -2 ? "fenced" : "gone";
  }

  /** The reply a request answered with, or null when it has none (unanswered, or expired). */
  async reply(requestId: string): Promise<StoredReply | null> {
    const json = await this.#redis.hget(this.#keys.request(requestId), "res");
    return json === null ? null : (JSON.parse(json) as StoredReply);
  }

  /** The hosts heartbeating now, with the info each last sent (as RedisWorker sends it: HostInfo). */
  async hosts(): Promise<Array<{ id: string; lastSeen: number; info: Partial<HostInfo> }>> {
    const ids = await this.#redis.zrange(this.#keys.hosts, 0, -1, "WITHSCORES");
    const out: Array<{ id: string; lastSeen: number; info: Partial<HostInfo> }> = [];
    const pairs: Array<[string, number]> = [];
    for (let i = 0; i < ids.length; i += 2) pairs.push([ids[i]!, Number(ids[i + 1])]);
    if (pairs.length === 0) return out;
    const infos = await this.#redis.mget(...pairs.map(([id]) => this.#keys.hostInfo(id)));
    pairs.forEach(([id, lastSeen], i) => {
      const info = infos[i];
      if (info) out.push({ id, lastSeen, info: JSON.parse(info) as Partial<HostInfo> });
    });
    return out;
  }
}

function claimed(raw: unknown): Claimed[] {
  return (raw as Array<Array<string | null>>).map((r) => ({
    requestId: r[0]!,
    band: r[1] as Band,
    entryId: r[2]!,
    fence: r[3]!,
    attempt: Number(r[4]),
    handler: r[5]!,
    payloadJson: r[6]!,
    checkpoint: r[7] ?? null,
    deadline: Number(r[8]),
    priority: Number(r[9]),
    acceptedBy: r[10]!,
    idempotencyKey: r[11] || null,
    previousHolder: r[12] ?? null,
  }));
}
