/**
 * Lookahead for long jobs: while every node is busy, a thread node may be sent one more
 * request ahead, which it starts the moment its slot frees, without waiting for its
 * result to reach the primary and for the primary to get a time slice (the idle gap that
 * kept fib on 2 nodes at 0.75–0.89 of ideal, issue 13).
 *
 * A thread busy in synchronous code cannot give a request back, so the hand-over goes
 * through memory the thread shares with the primary (thread-transport.ts): one Int32
 * cell per node holds the id of the attempt held ahead. The node starts it only after
 * a compare-and-swap of the cell from that id to 0 succeeds; the primary takes it back
 * with the same swap. Exactly one of the two wins, so a request runs once: on the node
 * that held it, or, taken back, on the node that freed up.
 *
 * Process nodes get no lookahead for long jobs: fork IPC shares no memory, and a
 * take-back by message would wait for the child's event loop, which the long job blocks;
 * short jobs still pipeline to them (placement.ts). Thread nodes hosted in a child
 * process (threadHost "process", the default) share no memory with the primary either,
 * and get none for now: their host could do the swap on the primary's behalf, at the
 * cost of an asynchronous take-back (not built). With threadHost "primary" they do.
 */
import type { ComputeNode } from "../nodes/compute-node.js";
import type { Attempt, Job } from "./job.js";

/**
 * Takes back held attempts that a node with a free slot could run now, best-ranked
 * first, at most one per free slot. The caller ends each returned attempt (uncharged)
 * and starts its job on `to`.
 * @param attempts the dispatcher's live attempts by id
 * @param canRun whether a job may run on a node now (placement's rules)
 */
export function takeBackHeld(
  nodes: readonly ComputeNode[],
  attempts: ReadonlyMap<number, Attempt>,
  canRun: (job: Job, node: ComputeNode) => boolean,
): Array<{ attempt: Attempt; to: ComputeNode }> {
  const held: Attempt[] = [];
  for (const node of nodes) {
    const a = node.heldAttempt();
    const attempt = a === 0 ? undefined : attempts.get(a);
    if (attempt && attempt.job.state === "running") held.push(attempt);
  }
  if (held.length === 0) return [];
  held.sort((x, y) => x.job.rank - y.job.rank);
  const taken: Array<{ attempt: Attempt; to: ComputeNode }> = [];
  for (const free of nodes) {
    let room = free.state === "up" ? free.capacity - free.inFlight : 0;
    for (let i = 0; i < held.length && room > 0; i++) {
      const attempt = held[i]!;
      if (attempt.node === free || !canRun(attempt.job, free)) continue;
      held.splice(i--, 1);
      if (!attempt.node.takeBack(attempt.a)) continue; // the node started it first: it runs there
      taken.push({ attempt, to: free });
      room--;
    }
  }
  return taken;
}
