// One slice of deterministic CPU work (~20 µs), shared by the slices handler and the
// calibration in the benchmark process, so both measure the same code.
export function workUnit(seed) {
  let x = seed | 0;
  for (let i = 0; i < 16000; i++) x = (Math.imul(x, 31) + i) | 0;
  return x;
}

/** Milliseconds one unit takes here (best of several batches). */
export function unitMs() {
  let best = Infinity;
  let sink = 0;
  for (let batch = 0; batch < 10; batch++) {
    const t = performance.now();
    for (let i = 0; i < 200; i++) sink ^= workUnit(i);
    best = Math.min(best, (performance.now() - t) / 200);
  }
  if (sink === 0.5) console.log(sink); // keeps the loop from being optimised away
  return best;
}
