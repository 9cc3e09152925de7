/**
 * Type-level test, checked by `tsc -p tsconfig.test.json` (never run): the generic
 * parameters of cluster.run, client.run, Handler and HandlerContext give TypeScript
 * users their types back, and a wrong use does not compile (each @ts-expect-error
 * fails the type-check if the line below it stops being an error).
 */
import { Client, type Cluster, type Handler, type HandlerContext } from "crew";

interface Fib {
  n: number;
}
interface Progress {
  done: number;
}

export async function typedResults(cluster: Cluster, client: Client): Promise<void> {
  const a: number = await cluster.run<number>("fib", { n: 30 });
  const b: { slept: number } = await client.run<{ slept: number }>("sleep", { ms: 10 });
  // Without a type argument the result is unknown, as before: it must be narrowed.
  const c: unknown = await cluster.run("echo", 1);
  // @ts-expect-error a number result is not a string
  const d: string = await cluster.run<number>("fib", { n: 30 });
  const e = await client.run("fib", { n: 30 });
  // @ts-expect-error without a type argument (or an annotated target) the result is unknown
  e.toFixed();
  void [a, b, c, d];
}

export const job: Handler<Fib, number, Progress> = async (payload, ctx) => {
  const start: number = ctx.resumeFrom?.done ?? 0;
  await ctx.checkpoint({ done: start + payload.n });
  // @ts-expect-error the checkpoint's shape is Progress
  await ctx.checkpoint({ finished: true });
  return start;
};

export async function contextAlone(ctx: HandlerContext<Progress>): Promise<number> {
  // @ts-expect-error resumeFrom may be undefined on a fresh start
  const done: number = ctx.resumeFrom.done;
  const untyped: HandlerContext = ctx as unknown as HandlerContext;
  await untyped.checkpoint({ anything: ["json"] });
  return done;
}
