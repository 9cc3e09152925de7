// A handler with a slow tail, as in "The Tail at Scale": most runs take ~1 ms, 2% take
// 50 ms (a stall, not CPU: the node waits, as behind a GC pause or a slow disk).
export const SLOW_SHARE = 0.02;
export const FAST_MS = 1;
export const SLOW_MS = 50;

export default function tail(_payload, ctx) {
  const ms = Math.random() < SLOW_SHARE ? SLOW_MS : FAST_MS;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => resolve({ ms, node: ctx.node.id }), ms);
    // A lost hedge race is aborted: let go of the node at once.
    ctx.signal.addEventListener("abort", () => (clearTimeout(timer), reject(ctx.signal.reason)), { once: true });
  });
}
