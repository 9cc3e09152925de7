/**
 * A tiny seeded PRNG (mulberry32) for tests and `--seed`: deterministic picks for
 * `random` and `p2c` without pulling in a dependency. Not for anything security related.
 * Algorithm: https://gist.github.com/tommyettinger/46a874533244883189143505d203312c
 */

/** Returns a function yielding uniform numbers in [0, 1), the same sequence for the same seed. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
