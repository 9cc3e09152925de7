/**
 * Placement: which nodes may take a request now, and the balancer's pick among them.
 * It also keeps the estimate that node pipelining runs on: each handler's moving average
 * run time, as measured inside the nodes.
 */
import type { ComputeNode } from "../nodes/compute-node.js";
import type { Balancer } from "./balancers/balancer.js";
import type { Job } from "./job.js";

/**
 * Pipelining: while every node is busy, a node may be sent attempts ahead, up to this
 * much estimated work in total, and only while its current attempt has run less than
 * this. Handlers not yet measured count as over it. A request sent ahead can still wait
 * behind one that turns out long (its handler's other requests were short): at most the
 * budget's worth of them, and none once the long one passes the budget.
 */
const PIPELINE_BUDGET_MS = 1;
const UNMEASURED_MS = PIPELINE_BUDGET_MS * 2;

/**
 * start: run it on `node` now (or ahead); park: wait for `node`, which its key is bound
 * to; held: send it ahead as `node`'s one request of lookahead, which the primary can
 * take back while the node has not started it (lookahead.ts).
 */
export type Placed = { node: ComputeNode; park: boolean; held: boolean };

export class Placement {
  readonly #nodes: readonly ComputeNode[];
  readonly #balancer: Balancer;
  readonly #pipeline: number;
  readonly #lookahead: number;
  /** Per handler: a moving average of its run time in the node, in ms. */
  readonly #runMs = new Map<string, number>();

  constructor(nodes: readonly ComputeNode[], balancer: Balancer, pipeline: number, lookahead = 0) {
    this.#nodes = nodes;
    this.#balancer = balancer;
    this.#pipeline = pipeline;
    this.#lookahead = lookahead;
  }

  /** Where `job` goes now, or null when no node can take it yet. */
  place(job: Job): Placed | null {
    const bound = this.#balancer.affinity && job.key !== undefined;
    let pool = this.#eligible(job, bound ? "any" : "room");
    if (pool.length === 0 && !bound && this.#pipeline > 0) pool = this.#eligible(job, "ahead");
    let held = false;
    if (pool.length === 0 && !bound && this.#mayBeHeld(job)) {
      pool = this.#eligible(job, "hold");
      held = true;
    }
    if (pool.length === 0) return null;
    const node = this.#balancer.pick(job, pool) as ComputeNode;
    return { node, park: bound && !node.hasRoom && !this.#canSendAhead(node, job), held };
  }

  /** Whether `node` may run `job` now: up, with a free slot, of an allowed kind, serving its handler. */
  canRunNow(job: Job, node: ComputeNode): boolean {
    return node.hasRoom && this.#allowed(job, node);
  }

  /** Whether `job` may be held ahead in `node` (lookahead), ignoring what it holds now. */
  mayHold(job: Job, node: ComputeNode): boolean {
    return this.#mayBeHeld(job) && node.state === "up" && this.#allowed(job, node);
  }

  /** Lookahead is on, and `job` is not hedged: a hedge already covers a slow node (hedger.ts). */
  #mayBeHeld(job: Job): boolean {
    return this.#lookahead > 0 && job.spec.hedgeAfterMs === null;
  }

  /** `node` is of a kind `job` may run on and serves its handler (a reload may add or delete handlers). */
  #allowed(job: Job, node: ComputeNode): boolean {
    return (job.spec.isolation !== "process" || node.kind === "process") && node.serves(job.handler);
  }

  /** A node other than `busy` with a free slot now that may run `job` (a hedge), or null. */
  spare(job: Job, busy: ComputeNode): ComputeNode | null {
    const pool = this.#eligible(job, "room").filter((n) => n !== busy);
    return pool.length === 0 ? null : (this.#balancer.pick(job, pool) as ComputeNode);
  }

  /** The run time to expect of `job`'s handler, for the pipelining budget. */
  expectedMs(job: Job): number {
    return this.#runMs.get(job.handler) ?? UNMEASURED_MS;
  }

  recordRunTime(handler: string, ms: number): void {
    const avg = this.#runMs.get(handler);
    this.#runMs.set(handler, avg === undefined ? ms : avg + 0.2 * (ms - avg));
  }

  /** Nodes come and go: balancers that keep per-node state hear of it. */
  nodesChanged(): void {
    this.#balancer.nodesChanged?.(this.#nodes.filter((n) => n.state === "up"));
  }

  /**
   * The up nodes allowed to run `job`: all of them ("any", for a key bound by the hash
   * balancer), those with a free slot ("room"), those that may take it ahead ("ahead"),
   * or those that may hold it as lookahead ("hold": a thread node with every slot busy
   * and nothing waiting). A preferred kind wins when it has any.
   * Fresh arrays each call: truncating reused ones (`length = 0`) is a runtime call in V8
   * and cost more than the allocation (profiled: ~4% of the primary under cluster.run).
   */
  #eligible(job: Job, mode: "any" | "room" | "ahead" | "hold"): ComputeNode[] {
    const all: ComputeNode[] = [];
    let preferred: ComputeNode[] | null = null;
    for (const node of this.#nodes) {
      if (node.state !== "up" || !this.#allowed(job, node)) continue;
      if (mode === "room" && !node.hasRoom) continue;
      if (mode === "ahead" && !this.#canSendAhead(node, job)) continue;
      if (mode === "hold" && !(node.canHold && node.inFlight === node.capacity)) continue;
      all.push(node);
      if (node.kind === job.spec.prefer) (preferred ??= []).push(node);
    }
    return mode !== "any" && preferred !== null ? preferred : all;
  }

  #canSendAhead(node: ComputeNode, job: Job): boolean {
    return (
      node.state === "up" &&
      node.inFlight < node.capacity + this.#pipeline &&
      node.expectedMs + this.expectedMs(job) <= PIPELINE_BUDGET_MS &&
      // A handler's average can hide one long request: a node whose current attempt has
      // already run past the budget gets nothing more ahead of it.
      performance.now() - node.busySince <= PIPELINE_BUDGET_MS
    );
  }
}
