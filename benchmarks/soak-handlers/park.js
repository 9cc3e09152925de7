// Holds its node until the request is cancelled or times out: the soak's requests wait in the primary.
export default function park(_payload, ctx) {
  return new Promise((resolve) => ctx.signal.addEventListener("abort", () => resolve(null), { once: true }));
}
