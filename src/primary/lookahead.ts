/**
 * Lookahead for long jobs: while every node is busy, a thread node may be sent one more
 * request ahead, which it starts the moment its slot frees, without waiting for its
 * result to reach the primary and for the primary to get a time slice (the idle gap that
 * kept fib on 2 nodes at 0.75–0.89 of ideal, issue 13).
 *
 * A thread busy in synchronous code cannot give a request back, so the hand-over goes
 * through memory the thread shares with whoever feeds it (thread-transport.ts): one BigInt64
 * cell per node records who won each held attempt (nodes/hand-over.ts). The node starts
 * a held attempt only if its compare-and-swap claims it, and then says `started`. The
 * primary takes it back by sending `take`, which the thread transport, not the thread,
 * answers by a swap on the same cell: exactly one of the two wins, in whatever order they
 * come, so a request runs once, on the node that held it or, won back, wherever it is
 * placed next. The answer is a message because the transport may live in another process
 * (thread nodes hosted in a child process, the default threadHost): the swap is then made
 * there, one IPC hop away, and the primary acts on the answer (`taken`) when it arrives.
 *
 * Process nodes get no lookahead for long jobs: fork IPC shares no memory, and a take-back
 * by message would wait for the child's event loop, which the long job blocks; short jobs
 * still pipeline to them (placement.ts).
 */
import type { ComputeNode } from "../nodes/compute-node.js";
import type { Attempts } from "./attempts.js";
import type { Attempt, Job } from "./job.js";
import type { Placement } from "./placement.js";

/**
 * The dispatcher's side of lookahead: which held requests to ask back, and when. A take's
 * answer comes back through the node (ComputeNode listener onTakenBack): the dispatcher
 * then withdraws the attempt (Attempts.withdraw) and queues its request again.
 */
export class Lookahead {
  readonly #nodes: readonly ComputeNode[];
  readonly #attempts: Attempts;
  readonly #placement: Placement;

  constructor(nodes: readonly ComputeNode[], attempts: Attempts, placement: Placement) {
    this.#nodes = nodes;
    this.#attempts = attempts;
    this.#placement = placement;
  }

  /** Requests held ahead in busy nodes and not started there: they wait too (the scaler counts them). */
  *held(): Generator<Job> {
    for (const node of this.#nodes) {
      const attempt = this.#heldOn(node);
      if (attempt) yield attempt.job;
    }
  }

  /** The attempt held ahead in `node`, not started there and with no take already on its way. */
  #heldOn(node: ComputeNode): Attempt | undefined {
    const a = node.heldAttempt();
    return a === 0 ? undefined : this.#attempts.get(a);
  }

  /**
   * Asks back the held requests that nodes with a free slot could run now, best-ranked
   * first, at most one per free slot not already spoken for by a take on its way. One won
   * back waits again at its rank, uncharged, and is placed on the free node from there.
   */
  askBackForFreeSlots(): void {
    const held: Attempt[] = [];
    let onTheirWay = 0;
    for (const node of this.#nodes) {
      if (node.taking) onTheirWay++;
      const attempt = this.#heldOn(node);
      if (attempt?.job.state === "running") held.push(attempt);
    }
    if (held.length === 0) return;
    held.sort((x, y) => x.job.rank - y.job.rank);
    for (const free of this.#nodes) {
      let room = free.state === "up" ? free.capacity - free.inFlight : 0;
      for (let i = 0; i < held.length && room > 0; i++) {
        const attempt = held[i]!;
        if (attempt.node === free || !this.#placement.canRunNow(attempt.job, free)) continue;
        held.splice(i--, 1);
        room--;
        if (onTheirWay > 0) onTheirWay--; // this slot is already waiting for a take's answer
        else attempt.node.takeBack(attempt.a);
      }
    }
  }

  /**
   * Waiting `job` outranks a request held ahead in a node it may be held in: the worst
   * such one is asked back, and `job` is held there in its place once the node answers,
   * so a request held ahead never keeps a better one (a higher priority) waiting.
   */
  giveWayTo(job: Job): void {
    let worst: Attempt | null = null;
    // Called whenever a request finds no node (the hot path when saturated): a plain loop.
    for (const node of this.#nodes) {
      const held = this.#heldOn(node);
      if (!held || held.job.rank <= job.rank || (worst && held.job.rank <= worst.job.rank)) continue;
      if (this.#placement.mayHold(job, node)) worst = held;
    }
    if (worst) worst.node.takeBack(worst.a);
  }

  /**
   * A request given up on (deadline, cancel) while held ahead and not started, as far as
   * the primary knows: asked back, so that it does not start and frees the busy node's
   * lookahead. The reply does not wait for the answer, and so counts the attempt: the
   * node may have started it just before (its abort follows it then).
   */
  askBackAbandoned(job: Job): void {
    const attempt = job.attempt;
    if (attempt?.held) attempt.node.takeBack(attempt.a);
  }
}
