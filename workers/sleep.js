// Waits ms milliseconds (I/O-like work), honouring the abort signal. payload: { ms }.
import { setTimeout as sleep } from "node:timers/promises";

export default async function (payload, ctx) {
  const ms = payload?.ms ?? 100;
  await sleep(ms, undefined, { signal: ctx.signal });
  return { slept: ms };
}
