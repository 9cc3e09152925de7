// A long job done in slices of CPU work, checkpointing every `every` ms (0: never), and
// resuming from its last checkpoint after a crash. payload: { units, every, pad? } (pad:
// characters of filler in each checkpoint, for its size).
import { workUnit } from "../lib/work-unit.js";

export const config = { maxAttempts: 5, timeoutMs: 120_000 };

export default async function slices({ units, every, pad = 0 }, ctx) {
  const filler = "x".repeat(pad);
  let done = ctx.resumeFrom?.done ?? 0;
  const resumedAt = done;
  let sink = 0;
  let checkpoints = 0;
  let last = performance.now();
  for (; done < units; done++) {
    sink ^= workUnit(done);
    if (every > 0 && performance.now() - last >= every) {
      await ctx.checkpoint(pad > 0 ? { done: done + 1, filler } : { done: done + 1 });
      checkpoints++;
      last = performance.now();
    }
  }
  return { attempt: ctx.attempt, resumedAt, checkpoints, sink };
}
