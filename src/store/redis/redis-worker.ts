/**
 * The running side of a host that shares a queue through Redis. It pulls from the shared
 * queue only as many requests as its nodes have room for (its own balancer then places
 * them), heartbeats the ones it runs every `heartbeatMs`, takes over requests whose host
 * stopped heartbeating for `hostTimeoutMs`, and answers through fenced writes: once
 * another host has claimed a request, this host's checkpoints and result for it are
 * refused, and its attempt is aborted.
 *
 * The heartbeat interval (host timeout / 4) and XAUTOCLAIM with the host timeout as
 * minimum idle time follow Redis Streams' documented recovery pattern
 * (https://redis.io/docs/data-types/streams/#automatic-claiming); Temporal's activity
 * heartbeats are the model for refreshing only what a worker still holds.
 */
import type { Logger } from "pino";
import { CancelledError, CrashedError, type CrewError, TimeoutError, UnknownHandlerError } from "../../errors.js";
import type { ComputeNode } from "../../nodes/compute-node.js";
import type { Dispatcher } from "../../primary/dispatcher.js";
import type { HandlerRegistry } from "../../primary/handler-registry.js";
import type { Job, Outcome } from "../../primary/job.js";
import { type Band, BANDS } from "./keys.js";
import type { Claimed, HostInfo, SharedQueue, StoredReply } from "./shared-queue.js";

export interface RedisWorkerDeps {
  queue: SharedQueue;
  dispatcher: Dispatcher;
  nodes: readonly ComputeNode[];
  registry: HandlerRegistry;
  host: string;
  hostTimeoutMs: number;
  /** Short requests a node may hold ahead (--node-pipeline): how many more a host may pull while its requests are short. */
  nodePipeline: number;
  connected: () => boolean;
  /** Renews this host's lease on its id (host-lease.ts): false once another host holds the id. */
  renewLease: () => Promise<boolean>;
  /** Called once when another host holds this host's id: the host retires (redis-host.ts). */
  onLostId: () => void;
  log: Logger;
}

interface Held {
  claim: Claimed;
  /** performance.now() at the claim, for the run-time average that decides prefetching. */
  claimedAt: number;
  job: Job | null;
  /** Set once another host took it, or it was answered elsewhere: nothing of it is written any more. */
  lost: boolean;
  /** The reply waiting for Redis to come back. */
  reply: StoredReply | null;
  /** Checkpoint writes of one request, one after the other. */
  checkpoints: Promise<unknown>;
}

/** Outcomes that mean "this host let go", not the request's answer: another host will run it. */
const LET_GO = new Set(["E_SHUTTING_DOWN", "E_OVERLOADED"]);

/** How often a host heartbeats, ms: a quarter of the host timeout (see the file header). */
export function heartbeatMsOf(hostTimeoutMs: number): number {
  return Math.max(10, Math.floor(hostTimeoutMs / 4));
}

/** How long a heartbeat keeps a host alive (its status, its lease), ms: the host timeout, and at least two heartbeats. */
export function liveForMs(hostTimeoutMs: number): number {
  return Math.max(hostTimeoutMs, 2 * heartbeatMsOf(hostTimeoutMs));
}

/** Request ids this host let go of, remembered so each is logged once (it may come back every heartbeat). */
const LET_GO_REMEMBERED = 1024;

/** Claim-to-answer time (moving average) under which a host pulls ahead, ms. */
const PREFETCH_BELOW_MS = 5;

export class RedisWorker {
  readonly #d: RedisWorkerDeps;
  readonly #held = new Map<string, Held>();
  readonly #heartbeatMs: number;
  #timer: NodeJS.Timeout | null = null;
  #pulling = false;
  #again = false;
  #stopped = false;
  #pullsStopped = false;
  /** Creating the consumer groups again after Redis lost them (see #regroupIfLost). */
  #regrouping = false;
  /** Moving average of claim-to-answer time, ms; starts high, so nothing is pulled ahead until requests prove short. */
  #avgMs = Infinity;
  /** Entries other hosts let go of for a host with a process node (LET_GO), to claim once there is room; oldest first. */
  #letGoNotices: Array<{ band: Band; entryId: string }> = [];
  /** Requests let go of (#noNode), oldest first: logged at info once, then at debug. */
  readonly #letGoLogged = new Set<string>();
  /** When the connection last became ready: takeovers wait one host timeout after it, so live hosts can heartbeat first. */
  #readySince = performance.now();
  /** The heartbeat under way (resolved when none is): close() waits for it. */
  #beating: Promise<void> = Promise.resolve();

  constructor(deps: RedisWorkerDeps) {
    this.#d = deps;
    this.#heartbeatMs = heartbeatMsOf(deps.hostTimeoutMs);
  }

  /** Requests this host runs for the cluster now. */
  get held(): number {
    return this.#held.size;
  }

  /**
   * Starts heartbeating. Resolves once the first heartbeat is done (it never rejects: a
   * failed one is retried every heartbeatMs): from then on the other hosts see this
   * host's nodes, so a host that needs a process node, say, knows this one has one.
   */
  start(): Promise<void> {
    this.#tick();
    return this.#beating;
  }

  /** Redis is back: flush replies held meanwhile, and wait a host timeout before taking anything over. */
  connectionReady(): void {
    this.#readySince = performance.now();
    void this.#flush();
    this.pump();
  }

  /** Stops pulling and taking over; keeps heartbeating what it holds until close(). */
  stopPulling(): void {
    this.#pullsStopped = true;
  }

  /** Waits (up to `timeoutMs`) for the replies still held for Redis, then stops heartbeating. */
  async close(timeoutMs: number): Promise<void> {
    this.#pullsStopped = true;
    const until = performance.now() + timeoutMs;
    while ([...this.#held.values()].some((h) => h.reply) && performance.now() < until) {
      await this.#flush();
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    // A heartbeat under way would renew the lease after the host released it (and show it alive).
    await this.#beating;
  }

  /**
   * Free slots on this host's nodes that are up, minus what it already holds. While the
   * requests it answers take under PREFETCH_BELOW_MS from claim to answer, each node also
   * counts its --node-pipeline: a Redis round trip per request and slot would cap echo
   * at a few thousand a second, while a long job must never wait here behind another
   * when a host elsewhere is idle.
   */
  room(): number {
    let slots = 0;
    const ahead = this.#avgMs < PREFETCH_BELOW_MS ? this.#d.nodePipeline : 0;
    for (const node of this.#d.nodes) if (node.state === "up") slots += node.capacity + ahead;
    return slots - this.#held.size;
  }

  /** Pulls new work while there is room; concurrent calls coalesce into one more pass. */
  pump(): void {
    if (this.#pulling) {
      this.#again = true;
      return;
    }
    if (this.#pullsStopped || this.room() <= 0 || !this.#d.connected()) return;
    this.#pulling = true;
    this.#claimPass().then(
      (claims) => {
        this.#pulling = false;
        for (const claim of claims) this.#run(claim);
        if (this.#again || claims.length > 0) {
          this.#again = false;
          this.pump();
        }
      },
      (err: unknown) => {
        this.#pulling = false;
        this.#d.log.debug({ err }, "pull failed");
        this.#regroupIfLost(err);
      },
    );
  }

  /**
   * A message on the work channel: a band with new work (pull), or `let-go BAND ENTRY`,
   * a request another host let go of as none of its nodes could run it. A host with a
   * process node up claims that entry as soon as it has room (#claimPass), instead of at
   * a heartbeat's takeover; others ignore it. At most LET_GO_REMEMBERED are kept.
   */
  workNoticed(message: string): void {
    if (!message.startsWith("let-go ")) return this.pump();
    const [, band, entryId] = message.split(" ");
    if (!BANDS.includes(band as Band) || !entryId || this.#pullsStopped) return;
    if (!this.#d.nodes.some((n) => n.kind === "process" && n.state === "up")) return;
    this.#letGoNotices.push({ band: band as Band, entryId });
    if (this.#letGoNotices.length > LET_GO_REMEMBERED) this.#letGoNotices.shift();
    this.pump();
  }

  /** One pass of pump(): first the entries let go of for this host's process nodes (the older work), then new ones. */
  async #claimPass(): Promise<Claimed[]> {
    const out: Claimed[] = [];
    while (this.#letGoNotices.length > 0 && this.room() > out.length) {
      const { band, entryId } = this.#letGoNotices.shift()!;
      out.push(...(await this.#d.queue.claimLetGo(band, entryId, this.#d.hostTimeoutMs)));
    }
    const room = this.room() - out.length;
    if (room > 0) out.push(...(await this.#d.queue.pull(room)));
    return out;
  }

  /** Another host answered (cancel, deadline) a request this host runs: abort it here. */
  abort(requestId: string, why = "answered on another host (cancel or deadline)"): void {
    const held = this.#held.get(requestId);
    if (!held) return;
    held.lost = true;
    this.#held.delete(requestId);
    this.#d.log.warn({ requestId, host: this.#d.host, why }, "attempt aborted: this host no longer holds the request");
    if (held.job && held.job.state !== "done") this.#d.dispatcher.cancel(held.job, new CancelledError(why));
    this.pump();
  }

  #run(claim: Claimed): void {
    const held: Held = { claim, claimedAt: performance.now(), job: null, lost: false, reply: null, checkpoints: Promise.resolve() };
    this.#held.set(claim.requestId, held);
    const spec = this.#d.registry.get(claim.handler);
    const refuse = (error: CrewError) => this.#answer(held, { ok: false, error, meta: { node: null, attempts: claim.attempt - 1, ms: 0 } });
    if (claim.previousHolder) {
      this.#d.log.warn({ requestId: claim.requestId, host: this.#d.host, from: claim.previousHolder, attempt: claim.attempt, resumeFrom: claim.checkpoint !== null }, "takeover");
      const message = `host ${this.#d.host} took over ${claim.requestId} from ${claim.previousHolder} (attempt ${claim.attempt})`;
      this.#d.dispatcher.observer.event?.({ kind: "takeover", message, host: this.#d.host, requestId: claim.requestId });
    }
    if (!spec) return refuse(new UnknownHandlerError(`host ${this.#d.host} has no handler named ${JSON.stringify(claim.handler)}`));
    if (claim.attempt > spec.maxAttempts) return refuse(new CrashedError(`every attempt's host or node died (${claim.attempt - 1} attempts)`));
    // A request whose attempts are spent answers E_CRASHED above, not through the
    // dispatcher, so the host that gives up is the one writing the answer.
    const timeoutMs = Math.round(claim.deadline - Date.now());
    if (timeoutMs <= 0) return refuse(new TimeoutError("deadline passed before the request could run"));
    held.job = this.#d.dispatcher.submit(
      {
        handler: spec.name,
        requestId: claim.requestId,
        payloadJson: claim.payloadJson,
        priority: claim.priority,
        timeoutMs,
        resume: { attempts: claim.attempt - 1, checkpoint: claim.checkpoint, timeoutMs },
        durable: { attemptStarted: () => {}, checkpoint: (_job, json) => this.#checkpoint(held, json) },
      },
      (outcome) => this.#answer(held, outcome),
    );
  }

  /**
   * Keeps a checkpoint in Redis, retrying while Redis is away; `ctx.checkpoint()` resolves
   * only once it is kept. Refused (fenced): the attempt is aborted here.
   */
  #checkpoint(held: Held, json: string): Promise<boolean> {
    const write = async (): Promise<boolean> => {
      for (;;) {
        if (held.lost || this.#stopped) return false;
        try {
          return await this.#d.queue.checkpoint(held.claim.requestId, held.claim.fence, json);
        } catch {
          await new Promise((resolve) => setTimeout(resolve, this.#heartbeatMs));
        }
      }
    };
    const next = held.checkpoints.then(write);
    held.checkpoints = next;
    return next.then((kept) => {
      if (!kept && !held.lost && !this.#stopped) this.abort(held.claim.requestId, "a checkpoint was refused: another host holds the request (fenced)");
      return kept;
    });
  }

  #answer(held: Held, outcome: Outcome): void {
    if (held.lost) return;
    if (!outcome.ok && outcome.error.code === "E_NO_NODE") return void this.#noNode(held, outcome);
    if (!outcome.ok && LET_GO.has(outcome.error.code)) {
      // Not an answer: this host cannot run it (draining, full). Stop heartbeating it, so
      // another host takes it over after the host timeout.
      this.#held.delete(held.claim.requestId);
      return;
    }
    this.#reply(held, outcome);
  }

  /** Keeps the request's reply and sends it to Redis (held there while Redis is away). */
  #reply(held: Held, outcome: Outcome): void {
    const took = performance.now() - held.claimedAt;
    this.#avgMs = this.#avgMs === Infinity ? took : this.#avgMs * 0.9 + took * 0.1;
    const meta = { ...outcome.meta, host: this.#d.host };
    held.reply = outcome.ok ? { ok: true, json: outcome.json, meta } : { ok: false, error: outcome.error.toJSON(), meta };
    void this.#send(held);
  }

  /**
   * No node of this host can run the request (a handler that needs a process node, on a
   * host without one). Another host may have one: let go of it, uncounted, and a host with
   * a process node claims it once it has room (SharedQueue.letGo, workNoticed). When no live host
   * lists one, E_NO_NODE is the answer, as on a single host; letting go then only passed
   * it from host to host until its deadline.
   */
  async #noNode(held: Held, outcome: Outcome): Promise<void> {
    const { claim } = held;
    let elsewhere = true;
    try {
      const hosts = await this.#d.queue.hosts();
      elsewhere = hosts.some((h) => h.id !== this.#d.host && (h.info.nodes ?? []).some((n) => n.kind === "process"));
    } catch {
      // Redis away: stop heartbeating it; it is taken over a host timeout from now.
    }
    if (held.lost) return;
    if (!elsewhere) return this.#reply(held, outcome);
    this.#held.delete(claim.requestId);
    // While the hosts that can run it are busy, this host may take it over again at each
    // heartbeat and let it go again, uncounted: each time it looks whether one still lives.
    const again = this.#letGoLogged.has(claim.requestId);
    if (!again) {
      this.#letGoLogged.add(claim.requestId);
      if (this.#letGoLogged.size > LET_GO_REMEMBERED) this.#letGoLogged.delete(this.#letGoLogged.values().next().value!);
    }
    const line = { requestId: claim.requestId, host: this.#d.host, handler: claim.handler };
    this.#d.log[again ? "debug" : "info"](line, "let go: no node here can run it, a node on another host can");
    await this.#d.queue.letGo(claim, this.#d.hostTimeoutMs).catch(() => {});
    this.pump();
  }

  async #send(held: Held): Promise<void> {
    const reply = held.reply;
    if (!reply || held.lost || !this.#d.connected()) return;
    try {
      await held.checkpoints;
      const res = await this.#d.queue.finish(held.claim.requestId, held.claim.fence, reply, held.claim.idempotencyKey !== null);
      if (res === "fenced") this.#d.log.warn({ requestId: held.claim.requestId, host: this.#d.host }, "result refused: another host holds the request (fenced)");
      else if (res !== "answered") this.#d.log.debug({ requestId: held.claim.requestId, host: this.#d.host, res }, "result not needed: answered already (cancel, deadline) or expired");
      held.reply = null;
      this.#held.delete(held.claim.requestId);
      this.pump();
    } catch {
      // Redis away: the reply stays held; connectionReady() and each heartbeat send it again.
    }
  }

  async #flush(): Promise<void> {
    await Promise.all([...this.#held.values()].filter((h) => h.reply).map((h) => this.#send(h)));
  }

  /** Every heartbeatMs: heartbeat, send held replies, take over dead hosts' requests, pull. */
  #tick(): void {
    if (this.#stopped) return;
    this.#beating = this.#beat();
    this.#beating.finally(() => {
      if (!this.#stopped) this.#timer = setTimeout(() => this.#tick(), this.#heartbeatMs);
    });
  }

  async #beat(): Promise<void> {
    if (!this.#d.connected()) return;
    try {
      if (!(await this.#d.renewLease())) return this.#lostId();
      const holding = [...this.#held.values()].filter((h) => !h.lost).map((h) => h.claim);
      const info: HostInfo = { nodes: this.#d.nodes.map((n) => ({ id: n.id, kind: n.kind, state: n.state, inFlight: n.inFlight })), held: holding.length };
      const lost = await this.#d.queue.heartbeat(holding, info, liveForMs(this.#d.hostTimeoutMs));
      for (const id of lost) this.abort(id, "another host took the request over (this host missed its heartbeats)");
      await this.#flush();
      const room = this.room();
      if (!this.#pullsStopped && room > 0 && performance.now() - this.#readySince >= this.#d.hostTimeoutMs) {
        for (const claim of await this.#d.queue.takeover(room, this.#d.hostTimeoutMs)) this.#run(claim);
      }
      this.pump();
    } catch (err) {
      this.#d.log.debug({ err }, "heartbeat failed");
      this.#regroupIfLost(err);
    }
  }

  /**
   * Another host holds this host's id: this one missed its heartbeats for a host timeout
   * (stopped, or cut off from Redis) and a host started under the same --host-id
   * meanwhile. Two hosts heartbeating as one would lose each other's work: this one stops
   * pulling and heartbeating, what it held is taken over like a dead host's, and the host
   * retires (onLostId: redis-host.ts).
   */
  #lostId(): void {
    if (this.#stopped) return;
    this.#pullsStopped = true;
    this.#stopped = true;
    this.#d.log.error(
      { host: this.#d.host, held: this.#held.size },
      "another host took this host's --host-id while this one missed its heartbeats: this host stops taking work from the cluster; restart it (give each host its own --host-id)",
    );
    this.#d.onLostId();
  }

  /**
   * Redis came back without its data (restarted with no persistence, flushed): the
   * queues' consumer groups went with it, and every pull, heartbeat and takeover fails
   * NOGROUP until they exist again. Creates them (idempotent, so hosts racing here are
   * harmless) and pulls: what was lost stays lost (docs/redis.md), new work runs.
   */
  #regroupIfLost(err: unknown): void {
    if (!(err instanceof Error) || !err.message.includes("NOGROUP") || this.#regrouping) return;
    this.#regrouping = true;
    this.#d.queue.ensureGroups().then(
      () => {
        this.#regrouping = false;
        this.#d.log.warn({ host: this.#d.host }, "the shared queue was gone from Redis (it lost its data): created it again");
        this.pump();
      },
      (e: unknown) => {
        this.#regrouping = false;
        this.#d.log.debug({ err: e }, "creating the shared queue again failed");
      },
    );
  }
}
