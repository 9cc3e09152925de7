// A long job that checkpoints after each step: payload { steps, ms }. It resumes from its
// checkpoint and reports where it started, so a test can tell a resume from a restart.
import { setTimeout as sleep } from "node:timers/promises";

export default async function steps(payload, ctx) {
  const start = ctx.resumeFrom?.i ?? 0;
  for (let i = start; i < payload.steps; i++) {
    await sleep(payload.ms, undefined, { signal: ctx.signal });
    await ctx.checkpoint({ i: i + 1 });
  }
  return { done: payload.steps, resumedAt: start, attempt: ctx.attempt };
}
