/**
 * Where accepted requests wait for a node: a queue of requests any node may run, a queue
 * of requests only process nodes may run (so they never hold up work an idle thread could
 * do), and, under the hash balancer, a queue per node for requests bound to that busy node.
 * A waiting job knows its queue (`job.queue`), so cancel and deadline remove it in O(log n).
 */
import type { ComputeNode } from "../nodes/compute-node.js";
import type { Job } from "./job.js";
import { WaitQueue } from "./queue.js";

export class WaitingRoom {
  readonly #any = new WaitQueue<Job>();
  readonly #processOnly = new WaitQueue<Job>();
  readonly #parked = new Map<ComputeNode, WaitQueue<Job>>();
  /** Jobs kept from starting while their client does not read its replies; they keep their rank. */
  readonly #held = new Set<Job>();
  #parkedCount = 0;

  /** Requests waiting, queued, parked or held: what maxQueue bounds. */
  get length(): number {
    return this.#any.length + this.#processOnly.length + this.#parkedCount + this.#held.size;
  }

  /** Takes a waiting job out of the queues until `release`; no-op for a job that is not waiting. */
  hold(job: Job): void {
    if (job.state !== "queued" && job.state !== "parked") return;
    this.remove(job);
    job.state = "held";
    this.#held.add(job);
  }

  /** Puts a held job back in the queue, at its rank; false when it was not held. */
  release(job: Job): boolean {
    if (!this.#held.delete(job)) return false;
    this.enqueue(job);
    return true;
  }

  /** Queues a job at its rank (a retried job keeps its rank, and so its place). */
  enqueue(job: Job): void {
    job.state = "queued";
    job.queue = job.spec.isolation === "process" ? this.#processOnly : this.#any;
    job.queue.push(job);
  }

  /** Binds a job to one busy node; it runs there when that node has room. */
  park(job: Job, node: ComputeNode): void {
    let parked = this.#parked.get(node);
    if (!parked) this.#parked.set(node, (parked = new WaitQueue<Job>()));
    job.state = "parked";
    job.queue = parked;
    parked.push(job);
    this.#parkedCount++;
  }

  /** Takes a job out of whichever queue holds it; no-op when it holds none. */
  remove(job: Job): void {
    if (job.state === "held") this.#held.delete(job);
    if (!job.queue) return;
    job.queue.remove(job);
    if (job.state === "parked") this.#parkedCount--;
    job.queue = null;
  }

  /** The two queue heads, better-ranked first (either may be undefined). */
  heads(): [Job | undefined, Job | undefined] {
    const a = this.#any.peek();
    const p = this.#processOnly.peek();
    return !a || (p && p.rank < a.rank) ? [p, a] : [a, p];
  }

  /** The next job bound to `node`, if any. */
  nextParked(node: ComputeNode): Job | undefined {
    return this.#parked.get(node)?.peek();
  }

  /** `node` died: the jobs bound to it go back to the main queues, at their ranks. */
  unpark(node: ComputeNode): void {
    const parked = this.#parked.get(node);
    if (!parked || parked.length === 0) return;
    this.#parkedCount -= parked.length;
    for (const job of parked.drain()) this.enqueue(job);
  }

  /** Every waiting job, queued or parked, without taking any out (for status pages). */
  *jobs(): Generator<Job> {
    for (const queue of [this.#any, this.#processOnly, ...this.#parked.values()]) yield* queue.values();
  }

  /** Empties every queue, returning what waited. */
  drainAll(): Job[] {
    const jobs: Job[] = [];
    for (const queue of [this.#any, this.#processOnly, ...this.#parked.values()]) {
      for (const job of queue.drain()) {
        job.queue = null;
        jobs.push(job);
      }
    }
    this.#parkedCount = 0;
    for (const job of this.#held) jobs.push(job);
    this.#held.clear();
    return jobs;
  }
}
