// A long job that checkpoints: sums 0..n-1, saving { i, total } every `every` steps.
// After a crash, the next attempt resumes from the last checkpoint instead of from 0.
// `crashAt` (for demos and tests) makes the first attempt die when it reaches that i.
import type { HandlerContext } from "crew";

export const config = { timeoutMs: 300_000, maxAttempts: 3 };

interface SumPayload {
  n: number;
  every?: number;
  crashAt?: number;
}
interface SumState {
  i: number;
  total: number;
}

export default async function sum(payload: SumPayload, ctx: HandlerContext) {
  const every = payload.every ?? 100_000;
  const start = (ctx.resumeFrom as SumState | undefined) ?? { i: 0, total: 0 };
  let { i, total } = start;
  for (; i < payload.n; i++) {
    if (i === payload.crashAt && ctx.attempt === 1) process.exit(70);
    if (i > start.i && i % every === 0) {
      await ctx.checkpoint({ i, total });
      if (ctx.signal.aborted) throw ctx.signal.reason;
    }
    total += i;
  }
  return { total, resumedFrom: start.i, attempt: ctx.attempt, node: ctx.node.id };
}
