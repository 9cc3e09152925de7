// Recovery probe. Attempt 1 saves a checkpoint (so the benchmark knows it is running, and
// where) and then waits to be killed; the next attempt answers at once with the moment it
// started, as epoch milliseconds with sub-ms precision (performance.timeOrigin + now is
// one clock across threads and processes), to compare with the kill time in the primary.
export const config = { maxAttempts: 5 };

export default async function hold(_payload, ctx) {
  const startedAt = performance.timeOrigin + performance.now();
  if (ctx.attempt === 1) {
    await ctx.checkpoint({ startedAt });
    return new Promise(() => {});
  }
  return { startedAt, attempt: ctx.attempt, node: ctx.node.id };
}
