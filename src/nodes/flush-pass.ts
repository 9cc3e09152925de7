/**
 * One pass per turn of the event loop sends what the nodes queued: a single setImmediate
 * for every node with messages waiting (not one each), then the batchers that combine
 * those batches further (the thread host: one IPC write for all its nodes, where a write
 * per node cost the primary ~9 µs a request under cluster.run). setImmediate, not a
 * microtask: requests read from many sockets in one poll phase (an HTTP request each)
 * share a pass instead of paying a message each.
 *
 * Flushes and batchers must not throw: each keeps its own failures (an unsendable payload
 * fails only its request).
 */
const flushes = new Set<() => void>();
const batchers = new Set<() => void>();
let scheduled = false;

/** Runs `flush` (a node's) in this turn's pass, once however often it is asked. */
export function flushInPass(flush: () => void): void {
  flushes.add(flush);
  schedule();
}

/** Runs `batcher` after every node flush of this turn's pass. */
export function afterPass(batcher: () => void): void {
  batchers.add(batcher);
  schedule();
}

function schedule(): void {
  if (scheduled) return;
  scheduled = true;
  setImmediate(pass);
}

function pass(): void {
  scheduled = false;
  for (const flush of flushes) {
    flushes.delete(flush);
    flush();
  }
  for (const batcher of batchers) {
    batchers.delete(batcher);
    batcher();
  }
}
