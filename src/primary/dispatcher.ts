/**
 * The dispatcher owns a request's life: admission, the wait queue, placement through
 * the balancer, attempts, deadlines, cancels, retries from the last checkpoint, and the
 * one reply. Both receivers and `cluster.run` come through `submit`.
 */
import type { Logger } from "pino";
import {
  CancelledError,
  CrashedError,
  type CrewError,
  errorFromWire,
  NoNodeError,
  OverloadedError,
  ShuttingDownError,
  TimeoutError,
  UnknownHandlerError,
} from "../errors.js";
import type { ComputeNode } from "../nodes/compute-node.js";
import type { CheckpointMsg, ResultMsg, RunMsg } from "../nodes/messages.js";
import type { ExitInfo } from "../nodes/transport.js";
import type { ResolvedOptions } from "../options.js";
import type { Balancer } from "./balancers/balancer.js";
import type { HandlerRegistry } from "./handler-registry.js";
import { newRequestId } from "./request-id.js";
import { type Attempt, type DoneCallback, type Durability, Job, type Outcome } from "./job.js";
import { heapNearLimit, Throttle } from "./admission.js";
import type { ClusterObserver } from "./observer.js";
import { Hedger } from "./hedger.js";
import { Lookahead } from "./lookahead.js";
import { Attempts } from "./attempts.js";
import { Placement } from "./placement.js";
import { WaitingRoom } from "./waiting-room.js";

export interface SubmitRequest {
  handler: string;
  payload?: unknown;
  /** The payload as JSON text, as a front received it (the node parses it); wins over `payload`. */
  payloadJson?: string | undefined;
  key?: string | undefined;
  timeoutMs?: number | undefined;
  priority?: number | undefined;
  /** Size of the request as received (frame or body), for the pending-bytes budget. */
  bytes?: number;
  /** DESIGN.md's idempotency key (src/store/keyed.ts handles joins and replays before this). */
  idempotencyKey?: string | undefined;
  /** The id of a request that resumes (journal restart, Redis takeover); new requests get one. */
  requestId?: string | undefined;
  /** Where a keyed request's attempts and checkpoints are kept. */
  durable?: Durability | undefined;
  /**
   * A request a previous primary accepted (journal): attempts so far, its last checkpoint
   * and its whole deadline (timeoutMs is then what is left of it). It is queued even past
   * maxQueue: it was accepted already.
   */
  resume?: { attempts: number; checkpoint: string | null; timeoutMs: number } | undefined;
}

export interface DispatchStats {
  accepted: number;
  refused: number;
  completed: number;
  failed: number;
  retries: number;
  checkpoints: number;
}

type Options = Pick<ResolvedOptions, "maxQueue" | "maxPendingBytes" | "killGraceMs" | "priorityAgingMs" | "nodePipeline"> & { nodeLookahead?: number } & { maxProcesses?: number };

/**
 * priorityAgingMs 0 means strict priority: a step worth 2^32 ms (~50 days) of waiting,
 * which no request outlives; ranks stay exact doubles for every allowed priority.
 */
const STRICT_PRIORITY_STEP_MS = 2 ** 32;

export class Dispatcher {
  readonly #registry: HandlerRegistry;
  readonly #options: Options;
  readonly #log: Logger;
  readonly #hasProcessNodes: boolean;
  readonly #room = new WaitingRoom();
  readonly #attempts: Attempts;
  readonly #lookahead: Lookahead;
  readonly #placement: Placement;
  readonly #hedger = new Hedger({
    spare: (job, busy) => this.#placement.spare(job, busy),
    startHedge: (job, node) => this.#startHedge(job, node),
    draining: () => this.#draining,
  });
  #nextRequest = 1;
  #active = 0;
  /** Bytes of the requests accepted and not yet answered: counts alone would let 1 MiB frames take 10 GiB. */
  #pendingBytes = 0;
  #draining = false;
  #idle: Array<() => void> = [];
  readonly #heapWarnings = new Throttle();
  /** hurryDrain() was called: a drain that starts later does not wait either. */
  #hurried = false;
  /** A placement after nodeLost is due in a microtask. */
  #pumpAfterLoss = false;
  readonly stats: DispatchStats = { accepted: 0, refused: 0, completed: 0, failed: 0, retries: 0, checkpoints: 0 };
  observer: ClusterObserver = {};

  constructor(deps: {
    nodes: readonly ComputeNode[];
    balancer: Balancer;
    registry: HandlerRegistry;
    options: Options;
    log: Logger;
  }) {
    this.#placement = new Placement(deps.nodes, deps.balancer, deps.options.nodePipeline, deps.options.nodeLookahead ?? 0);
    this.#attempts = new Attempts(deps.options.killGraceMs, deps.log);
    this.#lookahead = new Lookahead(deps.nodes, this.#attempts, this.#placement);
    this.#registry = deps.registry;
    this.#options = deps.options;
    this.#log = deps.log;
    // Elastic process nodes (processes "0..N") count: the scaler adds one for such a request.
    this.#hasProcessNodes = deps.nodes.some((n) => n.kind === "process") || (deps.options.maxProcesses ?? 0) > 0;
  }

  /** The requests first in line for a node: any node's queue and the process-only one's, better-ranked first. */
  waitingHeads(): [Job | undefined, Job | undefined] {
    return this.#room.heads();
  }

  /** Requests held ahead in busy nodes and not started there (lookahead): they wait too (the scaler counts them). */
  heldAhead(): Generator<Job> {
    return this.#lookahead.held();
  }

  /** Hedges started, won, and skipped (no budget, no free node): see hedger.ts. */
  get hedgeStats(): Readonly<import("./hedger.js").HedgeStats> {
    return this.#hedger.stats;
  }

  /** Requests waiting for a node (queued or parked). */
  get queueLength(): number {
    return this.#room.length;
  }

  /** Requests accepted and not yet answered. */
  get active(): number {
    return this.#active;
  }

  /** Whether a request that cannot start at once would be refused E_OVERLOADED. */
  get queueFull(): boolean {
    return this.#room.length >= this.#options.maxQueue;
  }

  get draining(): boolean {
    return this.#draining;
  }

  /**
   * Accepts a request, or refuses it at once. `done` gets exactly one outcome; for a
   * refused request it runs before submit returns, and submit returns null.
   */
  submit(req: SubmitRequest, done: DoneCallback): Job | null {
    const spec = this.#registry.get(req.handler);
    if (this.#draining) return this.#refuse(req.handler, done, new ShuttingDownError("the cluster is shutting down"));
    if (!spec) return this.#refuse(req.handler, done, new UnknownHandlerError(`no handler named ${JSON.stringify(req.handler)}`));
    if (spec.isolation === "process" && !this.#hasProcessNodes) {
      return this.#refuse(req.handler, done, new NoNodeError(`handler ${spec.name} needs a process node and the cluster has none`));
    }
    if (heapNearLimit()) {
      const skipped = this.#heapWarnings.take();
      if (skipped >= 0) this.#log.warn({ handler: req.handler, alsoRefused: skipped }, "primary heap near its limit: refusing new work");
      return this.#refuse(req.handler, done, new OverloadedError("the primary's memory is near its limit: retry later"));
    }
    const bytes = req.bytes ?? 0;
    if (this.#pendingBytes + bytes > this.#options.maxPendingBytes) {
      return this.#refuse(req.handler, done, new OverloadedError(`over ${this.#options.maxPendingBytes} bytes of requests pending: retry later`));
    }
    const priority = req.priority ?? 0;
    const timeoutMs = req.timeoutMs ?? spec.timeoutMs;
    this.#nextRequest++;
    const job = new Job(req.requestId ?? newRequestId(), spec, req.payload, req.key, priority, timeoutMs, done);
    job.bytes = bytes;
    job.idempotencyKey = req.idempotencyKey;
    job.durable = req.durable ?? null;
    job.payloadJson = req.payloadJson;
    if (req.resume && !this.#resume(job, req.resume)) return null;
    job.seq = this.#nextRequest;
    job.rank = job.submittedAt - priority * (this.#options.priorityAgingMs || STRICT_PRIORITY_STEP_MS);
    this.#room.enqueue(job);
    this.#pump();
    if (!req.resume && (job.state === "queued" || job.state === "parked") && this.queueLength > this.#options.maxQueue) {
      this.#room.remove(job);
      return this.#refuse(req.handler, done, new OverloadedError(`queue full (${this.#options.maxQueue} waiting): retry later`));
    }
    this.#active++;
    this.#pendingBytes += bytes;
    this.stats.accepted++;
    job.deadline = setTimeout(this.#onDeadline, timeoutMs, job);
    return job;
  }

  /** Sets a recovered job's attempts and checkpoint; false (and answered E_CRASHED) when its attempts are spent. */
  #resume(job: Job, resume: NonNullable<SubmitRequest["resume"]>): boolean {
    job.attempts = resume.attempts;
    if (resume.checkpoint !== null) job.storeCheckpoint(resume.checkpoint);
    if (resume.attempts < job.spec.maxAttempts) return true;
    const error = new CrashedError(`every attempt was cut short (${resume.attempts} attempts; the last by the primary's death)`);
    this.#refuse(job.handler, job.done, error);
    return false;
  }

  /**
   * Keeps waiting requests from starting (their client is not reading its replies), or
   * lets them go again; requests already running are not touched.
   */
  hold(jobs: Iterable<Job>): void {
    for (const job of jobs) this.#room.hold(job);
  }

  release(jobs: Iterable<Job>): void {
    let released = false;
    for (const job of jobs) released = this.#room.release(job) || released;
    if (released) this.#pump();
  }

  /**
   * Answers a request still waiting E_OVERLOADED, to make room in a full queue (fair
   * sharing, see ClientShares): counted as refused, like the refusal it stands for.
   * False when the request is not waiting.
   */
  shed(job: Job, error: CrewError): boolean {
    if (job.state !== "queued" && job.state !== "held") return false;
    this.stats.accepted--;
    this.stats.failed--;
    this.stats.refused++;
    return this.#finish(job, { ok: false, error, meta: job.meta() });
  }

  /** Cancels a request: it answers `error` (E_CANCELLED by default) unless it already answered. */
  cancel(job: Job, error: CrewError = new CancelledError("cancelled by the client")): void {
    if (job.state === "done") return;
    this.#lookahead.askBackAbandoned(job);
    if (this.#finish(job, { ok: false, error, meta: job.meta() })) this.#abandon(job, error);
  }

  /** The requests accepted and not yet answered: running, then waiting (GET /v1/requests). */
  *requests(): Generator<Job> {
    for (const attempt of this.#attempts.byId.values()) if ((attempt.job.attempt ?? attempt.job.hedge) === attempt && attempt.job.state === "running") yield attempt.job;
    yield* this.#room.jobs();
  }

  /** Stops taking requests; resolves once every accepted one has answered, or after `timeoutMs`. */
  async drain(timeoutMs: number): Promise<void> {
    this.#draining = true;
    if (this.#active > 0 && !this.#hurried) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, timeoutMs);
        this.#idle.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    // Whatever outlived the grace period answers now: every accepted request gets its reply.
    for (const job of this.#openJobs()) this.cancel(job, new ShuttingDownError("the cluster shut down before the request finished"));
  }

  /** Ends drain()'s wait now: what is still open answers E_SHUTTING_DOWN (a second Ctrl-C). */
  hurryDrain(): void {
    this.#hurried = true;
    for (const resolve of this.#idle.splice(0)) resolve();
  }

  onResult(node: ComputeNode, msg: ResultMsg): void {
    const attempt = this.#attempts.get(msg.a);
    if (!attempt) return;
    const job = attempt.job;
    this.#hedger.answered(attempt, msg.ok);
    const hedgedBy = job.hedged ? this.#hedgeResult(attempt) : null;
    this.#attempts.close(attempt);
    // Only what really ran measures a handler: a fast failure or a skipped attempt would
    // make a long handler look short enough to send ahead.
    if (msg.ok) this.#placement.recordRunTime(job.handler, msg.ms);
    if (msg.ok) this.#finish(job, { ok: true, json: msg.json ?? "null", meta: job.meta() });
    else this.#finish(job, { ok: false, error: errorFromWire(msg.error ?? { code: "E_HANDLER", message: "" }), meta: job.meta() });
    if (hedgedBy) this.#attempts.abort(hedgedBy, new CancelledError("another attempt of this hedged request answered first"));
    this.#attempts.reached(node);
    this.#nodeFreed(node);
  }

  onCheckpoint(node: ComputeNode, msg: CheckpointMsg): void {
    const attempt = this.#attempts.get(msg.a);
    if (!attempt || attempt.job.state === "done") return;
    attempt.job.storeCheckpoint(msg.json);
    this.stats.checkpoints++;
    this.observer.checkpointStored?.(attempt.job);
    // The ack goes out only now: `await ctx.checkpoint()` resolves once the state is held
    // here, and for a keyed request once its store has kept it.
    const ack = { t: "ckpt-ack", a: msg.a, seq: msg.seq } as const;
    const kept = attempt.job.durable?.checkpoint(attempt.job, msg.json) ?? true;
    if (kept === true) return node.send(ack);
    if (kept !== false) kept.then((ok) => ok && node.send(ack), (err: unknown) => this.#log.error({ err, requestId: attempt.job.requestId }, "the store could not keep a checkpoint"));
  }

  /** The one crash path: a node died with these attempts running on it. */
  nodeLost(node: ComputeNode, info: ExitInfo, lost: number[], ran: number[] | null): void {
    for (const [i, a] of lost.entries()) {
      const attempt = this.#attempts.get(a);
      if (!attempt) continue;
      this.#attempts.close(attempt);
      const job = attempt.job;
      if (job.state === "done") continue;
      if (job.attempt || job.hedge) continue; // hedged: its other attempt still runs
      if (ran ? !ran.includes(a) : i >= node.capacity) {
        // Not running when the node died (sent ahead and never started, or finished with
        // its result lost on the way): back to its place, without spending an attempt.
        job.attempts--;
        this.#room.enqueue(job);
        continue;
      }
      const log = { requestId: job.requestId, handler: job.handler, node: node.id, attempt: job.attempts };
      if (job.attempts >= job.spec.maxAttempts) {
        this.#log.warn({ ...log, reason: info.reason }, "request failed: every attempt's node died");
        const error = new CrashedError(`every attempt's node died (${job.attempts} attempts; last: node ${node.id} ${info.reason})`);
        this.#finish(job, { ok: false, error, meta: job.meta() });
      } else {
        this.#log.warn({ ...log, resumeFrom: job.checkpoint !== null }, "retrying request on another node");
        this.stats.retries++;
        this.observer.retry?.(job, node);
        this.#room.enqueue(job);
      }
    }
    this.#placement.nodesChanged();
    this.#room.unpark(node);
    // Nodes can die together (a thread host takes all its threads), their exits reported
    // one after another in one task: a retry placed at once could land on a sibling whose
    // death is next in line, and be charged an attempt it never ran. Placed from a
    // microtask instead, once every death of this task is known.
    if (this.#pumpAfterLoss) return;
    this.#pumpAfterLoss = true;
    queueMicrotask(() => {
      this.#pumpAfterLoss = false;
      this.#pump();
      this.#lookahead.askBackForFreeSlots();
    });
  }

  /** A node (re)started: it can take work. */
  nodeUp(): void {
    this.#placement.nodesChanged();
    this.#pump();
    this.#lookahead.askBackForFreeSlots();
  }

  /** Counts a request refused before it became a job: by the dispatcher, or by a front for a bad frame. */
  noteRefused(handler: string, code: string): void {
    this.stats.refused++;
    this.observer.requestRefused?.(handler, code);
  }

  #refuse(handler: string, done: DoneCallback, error: CrewError): null {
    this.noteRefused(handler, error.code);
    done({ ok: false, error, meta: { node: null, attempts: 0, ms: 0 } });
    return null;
  }

  /** Places waiting requests on nodes while any can be placed, in queue order. */
  #pump(): void {
    for (;;) {
      const [first, second] = this.#room.heads();
      if (!first) return;
      if (this.#place(first)) continue;
      if (!second || !this.#place(second)) return this.#lookahead.giveWayTo(first);
    }
  }

  #place(job: Job): boolean {
    const placed = this.#placement.place(job);
    if (!placed) return false;
    this.#room.remove(job);
    if (!placed.park) {
      this.#start(job, placed.node, placed.held);
      return true;
    }
    this.#room.park(job, placed.node);
    return true;
  }

  #start(job: Job, node: ComputeNode, held = false): void {
    const attempt = this.#attempts.open(job, node, this.#placement.expectedMs(job));
    if (held) attempt.held = { lastNode: job.lastNode, version: job.version };
    job.state = "running";
    job.attempt = attempt;
    job.attempts++;
    job.lastNode = node.id;
    job.version = node.versionOf(job.handler);
    const first = job.startedAt === 0;
    if (first) job.startedAt = performance.now();
    job.durable?.attemptStarted(job);
    this.observer.attemptStarted?.(job, node, first);
    if (job.spec.hedgeAfterMs !== null && !job.hedged) this.#hedger.arm(attempt);
    this.#send(attempt, held);
  }

  /**
   * Sends an attempt. Fields with nothing to say are left out rather than sent undefined:
   * the message is structured-cloned (thread nodes) per key, and the node reads `payload`
   * only when there is no `payloadJson` (runtime.ts). Measured: ~0.15 µs per message of
   * the primary's postMessage, ~18% of cloning a batch of run messages.
   */
  #send(attempt: Attempt, held = false): void {
    const job = attempt.job;
    const msg = (
      job.payloadJson === undefined
        ? { t: "run", a: attempt.a, requestId: job.requestId, handler: job.handler, payload: job.payload, attempt: job.attempts, resumeFrom: job.checkpoint }
        : { t: "run", a: attempt.a, requestId: job.requestId, handler: job.handler, payloadJson: job.payloadJson, attempt: job.attempts, resumeFrom: job.checkpoint }
    ) as RunMsg;
    if (job.idempotencyKey !== undefined) msg.idempotencyKey = job.idempotencyKey;
    if (held) msg.held = true;
    attempt.node.run(msg);
  }

  /**
   * A request held ahead in `node` was won back before the node started it: uncharged,
   * it waits again at its rank (and goes to the node that freed, or the next to), unless
   * it has answered meanwhile (deadline, cancel).
   */
  onTakenBack(node: ComputeNode, a: number): void {
    const attempt = this.#attempts.get(a);
    if (!attempt) return;
    this.#attempts.withdraw(attempt);
    const job = attempt.job;
    this.observer.takenBack?.(job, node);
    if (job.state !== "done") {
      this.#log.debug({ requestId: job.requestId, handler: job.handler, from: node.id }, "lookahead: request taken back");
      this.#room.enqueue(job);
    }
    this.#pump();
  }

  /**
   * A node no longer holds a request ahead (it started it, or a take lost the race to
   * it): it may be sent another, and a node the take was for may ask another node's.
   */
  onCanHold(): void {
    this.#pump();
    this.#lookahead.askBackForFreeSlots();
  }

  /** Starts `job`'s one hedge on `node`, from its last checkpoint (hedger.ts decides when). */
  #startHedge(job: Job, node: ComputeNode): void {
    const hedge = this.#attempts.open(job, node, this.#placement.expectedMs(job));
    job.hedge = hedge;
    job.hedged = true;
    this.#log.debug({ requestId: job.requestId, handler: job.handler, node: node.id, first: job.attempt?.node.id }, "hedging request");
    this.observer.hedgeStarted?.(job, node);
    this.#send(hedge);
  }

  /**
   * A hedged request's attempt answered: the reply names its node; returns the other
   * attempt, still running, which the caller aborts once the request has answered.
   */
  #hedgeResult(attempt: Attempt): Attempt | null {
    const job = attempt.job;
    if (job.state === "done") return null;
    const byHedge = job.hedge === attempt;
    const other = byHedge ? job.attempt : job.hedge;
    job.lastNode = attempt.node.id;
    job.version = attempt.node.versionOf(job.handler);
    if (byHedge) this.#hedger.stats.hedgeWins++;
    this.observer.hedgeSettled?.(job, byHedge);
    return other;
  }

  /** A slot opened on `node`: requests bound to it come first, then the queue. */
  #nodeFreed(node: ComputeNode): void {
    const next = this.#room.nextParked(node);
    if (next && node.hasRoom) {
      this.#room.remove(next);
      this.#start(next, node);
    }
    this.#pump();
    if (node.hasRoom) this.#lookahead.askBackForFreeSlots();
  }

  /** Answers once; false when the request had answered already. */
  #finish(job: Job, outcome: Outcome): boolean {
    if (job.state === "done") return false;
    this.#room.remove(job);
    if (job.deadline) clearTimeout(job.deadline);
    job.state = "done";
    job.checkpoint = null;
    this.#active--;
    this.#pendingBytes -= job.bytes;
    if (outcome.ok) this.stats.completed++;
    else this.stats.failed++;
    this.observer.requestDone?.(job, outcome);
    try {
      job.done(outcome);
    } catch (err) {
      this.#log.error({ err, requestId: job.requestId }, "a reply callback threw");
    }
    if (this.#active === 0 && this.#idle.length > 0) for (const resolve of this.#idle.splice(0)) resolve();
    return true;
  }

  /** After a deadline or cancel: stop the attempt, and kill its node if the handler will not let go. */
  #abandon(job: Job, error: CrewError): void {
    if (job.attempt) this.#attempts.abort(job.attempt, error);
    if (job.hedge) this.#attempts.abort(job.hedge, error);
  }

  readonly #onDeadline = (job: Job): void => {
    job.deadline = null;
    const error = new TimeoutError(`deadline of ${job.timeoutMs} ms passed`);
    this.#lookahead.askBackAbandoned(job);
    if (this.#finish(job, { ok: false, error, meta: job.meta() })) this.#abandon(job, error);
  };

  *#openJobs(): Generator<Job> {
    const seen = new Set<Job>();
    for (const attempt of this.#attempts.byId.values()) if (attempt.job.state !== "done") seen.add(attempt.job);
    for (const job of this.#room.drainAll()) seen.add(job);
    yield* seen;
  }
}
