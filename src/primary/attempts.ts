/**
 * The attempts in flight, by id: each is one try of a request on one node. This table
 * gives them their ids (unique for the cluster's life, growing in dispatch order), keeps
 * the work estimate they add to their node (node pipelining, placement.ts), and carries
 * out a request giving up on one (a deadline, a cancel, a hedge that lost): the node is
 * told to abort it, and is killed if the handler still runs `killGraceMs` later. An
 * attempt given up on while it still waits in its node (sent or held ahead) gets its
 * grace period only once it reaches a slot: a node, and the attempt running on it, are
 * never killed for a request that has not started.
 */
import type { Logger } from "pino";
import type { CrewError } from "../errors.js";
import type { ComputeNode } from "../nodes/compute-node.js";
import type { Attempt, Job } from "./job.js";

export class Attempts {
  readonly #byId = new Map<number, Attempt>();
  readonly #killGraceMs: number;
  readonly #log: Logger;
  #next = 1;
  /** Attempts given up on while waiting in their node, not yet in a slot. */
  #waitingAbandoned = 0;

  constructor(killGraceMs: number, log: Logger) {
    this.#killGraceMs = killGraceMs;
    this.#log = log;
  }

  /** The live attempts by id (read-only: open and close change it). */
  get byId(): ReadonlyMap<number, Attempt> {
    return this.#byId;
  }

  get(a: number): Attempt | undefined {
    return this.#byId.get(a);
  }

  /** A new attempt of `job` on `node`, expected to run `expectedMs` ms, counted in flight; the caller sends it. */
  open(job: Job, node: ComputeNode, expectedMs: number): Attempt {
    const attempt: Attempt = { a: this.#next++, job, node, graceTimer: null, abortedWith: null, expectedMs };
    node.expectedMs += expectedMs;
    this.#byId.set(attempt.a, attempt);
    return attempt;
  }

  /** Ends an attempt (answered, lost with its node, or taken back): its timers stop and its job lets go of it. */
  close(attempt: Attempt): void {
    this.#byId.delete(attempt.a);
    const node = attempt.node;
    node.expectedMs = node.inFlight === 0 ? 0 : Math.max(0, node.expectedMs - attempt.expectedMs);
    if (attempt.graceTimer) clearTimeout(attempt.graceTimer);
    else if (attempt.abortedWith) this.#waitingAbandoned--;
    if (attempt.hedgeTimer) clearTimeout(attempt.hedgeTimer);
    if (attempt.job.attempt === attempt) attempt.job.attempt = null;
    if (attempt.job.hedge === attempt) attempt.job.hedge = null;
  }

  /**
   * Ends an attempt taken back before it started (lookahead.ts): as if it had never been
   * sent, its request's attempt count, node and version are as before.
   */
  withdraw(attempt: Attempt): void {
    this.close(attempt);
    const job = attempt.job;
    job.attempts--;
    job.lastNode = attempt.held?.lastNode ?? null;
    job.version = attempt.held?.version;
  }

  /**
   * Its request gave up on `attempt` with `error`: the node aborts it (one still waiting
   * there is dropped), and the grace period starts now if it runs, else when it reaches a slot.
   */
  abort(attempt: Attempt, error: CrewError): void {
    attempt.abortedWith = error.code;
    attempt.node.send({ t: "abort", a: attempt.a, reason: error.toJSON() });
    if (attempt.node.isRunning(attempt.a)) this.#armGrace(attempt);
    else this.#waitingAbandoned++;
  }

  /** Attempts given up on while waiting in `node` that have now reached a slot get their grace period. */
  reached(node: ComputeNode): void {
    if (this.#waitingAbandoned === 0) return; // the usual case, checked on every result
    for (const a of node.runningIds()) {
      const attempt = this.#byId.get(a);
      if (attempt?.abortedWith && !attempt.graceTimer) {
        this.#waitingAbandoned--;
        this.#armGrace(attempt);
      }
    }
  }

  #armGrace(attempt: Attempt): void {
    attempt.graceTimer = setTimeout(() => {
      if (!this.#byId.has(attempt.a)) return;
      this.#log.warn(
        { node: attempt.node.id, requestId: attempt.job.requestId, graceMs: this.#killGraceMs, reason: attempt.abortedWith },
        "handler ignored its abort signal: killing its node",
      );
      attempt.node.kill();
    }, this.#killGraceMs);
  }
}
