/**
 * Lookahead for long jobs: while every node is busy, a thread node may be sent one more
 * request ahead, which it starts the moment its slot frees, without waiting for its
 * result to reach the primary and for the primary to get a time slice (the idle gap that
 * kept fib on 2 nodes at 0.75–0.89 of ideal, issue 13).
 *
 * A thread busy in synchronous code cannot give a request back, so the hand-over goes
 * through memory the thread shares with whoever feeds it (thread-transport.ts): one Int32
 * cell per node holds the id of the attempt held ahead. The node starts it only after a
 * compare-and-swap of the cell from that id to 0 succeeds, and then says `started`. The
 * primary takes it back by sending `take`, which the thread transport, not the thread,
 * answers with the same swap, in order with the run that held it: exactly one of the two
 * wins, so a request runs once, on the node that held it or, won back, wherever it is
 * placed next. The answer is a message because the transport may live in another process
 * (thread nodes hosted in a child process, the default threadHost): the swap is then made
 * there, one IPC hop away, and the primary acts on the answer (`taken`) when it arrives.
 *
 * Process nodes get no lookahead for long jobs: fork IPC shares no memory, and a take-back
 * by message would wait for the child's event loop, which the long job blocks; short jobs
 * still pipeline to them (placement.ts).
 */
import type { ComputeNode } from "../nodes/compute-node.js";
import type { Attempt, Job } from "./job.js";

/**
 * The held attempts to ask back now, best-ranked first: those a node with a free slot
 * could run, at most one per free slot not already spoken for by a take on its way. The
 * caller sends each a take (ComputeNode.takeBack); one won back returns to the queue at
 * its rank, uncharged (Dispatcher.onTakenBack), and is placed on the free node from there.
 * @param attempts the dispatcher's live attempts by id
 * @param canRun whether a job may run on a node now (placement's rules)
 */
export function heldToTakeBack(
  nodes: readonly ComputeNode[],
  attempts: ReadonlyMap<number, Attempt>,
  canRun: (job: Job, node: ComputeNode) => boolean,
): Attempt[] {
  const held: Attempt[] = [];
  let onTheirWay = 0;
  for (const node of nodes) {
    if (node.taking) onTheirWay++;
    const a = node.heldAttempt();
    const attempt = a === 0 ? undefined : attempts.get(a);
    if (attempt && attempt.job.state === "running") held.push(attempt);
  }
  if (held.length === 0) return [];
  held.sort((x, y) => x.job.rank - y.job.rank);
  const chosen: Attempt[] = [];
  for (const free of nodes) {
    let room = free.state === "up" ? free.capacity - free.inFlight : 0;
    for (let i = 0; i < held.length && room > 0; i++) {
      const attempt = held[i]!;
      if (attempt.node === free || !canRun(attempt.job, free)) continue;
      held.splice(i--, 1);
      room--;
      if (onTheirWay > 0) onTheirWay--; // this slot is already waiting for a take's answer
      else chosen.push(attempt);
    }
  }
  return chosen;
}

/**
 * The held attempt that waiting `job` should displace, or null: the worst-ranked one held
 * in a node `job` may be held in, when it ranks below `job`. Taken back, it waits again
 * and `job` is held in its place, so a request held ahead never keeps a better one (a
 * higher priority) waiting.
 * @param mayHold whether `job` may be held ahead in a node (placement's rules)
 */
export function outrankedHeld(
  nodes: readonly ComputeNode[],
  attempts: ReadonlyMap<number, Attempt>,
  job: Job,
  mayHold: (job: Job, node: ComputeNode) => boolean,
): Attempt | null {
  let worst: Attempt | null = null;
  for (const node of nodes) {
    const a = node.heldAttempt();
    const held = a === 0 ? undefined : attempts.get(a);
    if (!held || held.job.rank <= job.rank || (worst && held.job.rank <= worst.job.rank)) continue;
    if (mayHold(job, node)) worst = held;
  }
  return worst;
}
