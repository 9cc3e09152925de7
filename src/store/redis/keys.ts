/**
 * Where a cluster's state lives in Redis. Every key starts with `crew:{NAME}:`: the hash
 * tag `{NAME}` puts all of one cluster's keys in one slot, so the Lua scripts, which touch
 * several keys at once, stay legal on a Redis Cluster
 * (https://redis.io/docs/reference/cluster-spec/#hash-tags).
 */

/** Priority bands of the shared queue, pulled in this order (see docs/redis.md). */
export const BANDS = ["hi", "mid", "lo"] as const;
export type Band = (typeof BANDS)[number];

/** The consumer group every host reads the queue with; each host is one consumer. */
export const GROUP = "hosts";

/** The band of a priority: > 0 high, 0 normal, < 0 low. */
export function bandOf(priority: number): Band {
  return priority > 0 ? "hi" : priority < 0 ? "lo" : "mid";
}

export class Keys {
  /** The common prefix, `crew:{NAME}:`, also handed to the scripts to build request keys. */
  readonly prefix: string;

  constructor(readonly cluster: string) {
    if (!/^[A-Za-z0-9._-]{1,64}$/.test(cluster)) throw new Error(`cluster name must be 1-64 of [A-Za-z0-9._-], got ${JSON.stringify(cluster)}`);
    this.prefix = `crew:{${cluster}}:`;
  }

  /** The shared queue of one band: a stream of `{ r: requestId }` entries. */
  queue(band: Band): string {
    return `${this.prefix}q:${band}`;
  }

  /** All three queues, highest band first (the order the scripts read them). */
  get queues(): string[] {
    return BANDS.map((b) => this.queue(b));
  }

  /** One request: handler, payload, deadline, accepting host, owner, fence, checkpoint, reply. */
  request(requestId: string): string {
    return `${this.prefix}r:${requestId}`;
  }

  /** Idempotency key → request id. */
  idempotency(key: string): string {
    return `${this.prefix}ik:${key}`;
  }

  /** Hosts other than the accepting one waiting for a request's reply (same idempotency key). */
  waiters(requestId: string): string {
    return `${this.prefix}w:${requestId}`;
  }

  /** Replies for the requests a host accepted. */
  replies(host: string): string {
    return `${this.prefix}rp:${host}`;
  }

  /** Sorted set: host id → last heartbeat (epoch ms). */
  get hosts(): string {
    return `${this.prefix}hosts`;
  }

  /** A host's status (its nodes), expiring when it stops heartbeating. */
  hostInfo(host: string): string {
    return `${this.prefix}host:${host}`;
  }

  /** The lease on a host id (host-lease.ts): the token of the host that holds it. */
  lease(host: string): string {
    return `${this.prefix}lease:${host}`;
  }

  /** Pub/sub: "there is new work" (payload: the band). */
  get workChannel(): string {
    return `${this.prefix}work`;
  }

  /** Pub/sub: aborts for the attempts a host runs (payload: request id). */
  control(host: string): string {
    return `${this.prefix}ctl:${host}`;
  }
}
