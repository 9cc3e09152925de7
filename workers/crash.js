// A crash injector, for tests, chaos runs and demos. payload: { mode, code, onAttempt }.
// With onAttempt set, only that attempt crashes; the others answer { survived: true }.
// Modes: exit, uncaught, unhandled, oom, loop, throw, and on process nodes only (on a
// thread node that process is the thread host, or the primary) sigkill, sigsegv, sigstop
// (freezes; the primary kills it after --frozen-node-ms), disconnect (loses its IPC
// channel and exits) and disconnect-linger (loses its channel and lives on).
const PROCESS_ONLY = new Set(["sigkill", "sigsegv", "sigstop", "disconnect", "disconnect-linger"]);

/** Never resolves: the handler waits here while its node goes down. */
const forever = () => new Promise(() => {});

/** Ends the node in `mode` (or throws, for "throw" and for modes its node cannot do). */
export async function crash(mode, ctx, code = 1) {
  if (PROCESS_ONLY.has(mode) && ctx.node.kind !== "process") {
    throw new Error(`crash: ${mode} needs a process node, got ${ctx.node.id}`);
  }
  switch (mode) {
    case "exit":
      process.exit(code);
    case "uncaught":
      // Outside the handler's promise: nothing the runtime awaits can catch it.
      setTimeout(() => {
        throw new Error("crash: uncaught exception outside the handler's promise");
      });
      return forever();
    case "unhandled":
      void Promise.reject(new Error("crash: unhandled rejection"));
      return forever();
    case "oom": {
      const hoard = [];
      for (;;) hoard.push(new Array(1_000_000).fill(hoard.length));
    }
    case "loop":
      // Never yields: only killing its node stops it.
      for (;;);
    case "throw":
      throw new Error("crash: the handler threw");
    case "sigkill":
    case "sigsegv":
    case "sigstop":
      process.kill(process.pid, mode.toUpperCase());
      return forever();
    case "disconnect":
      // The node's entry exits when its channel closes.
      process.disconnect();
      return forever();
    case "disconnect-linger":
      // Outlives its IPC channel: the primary has to notice and kill it.
      process.removeAllListeners("disconnect");
      setInterval(() => {}, 1000);
      process.disconnect();
      return forever();
    default:
      throw new Error(`crash: unknown mode ${JSON.stringify(mode)}`);
  }
}

export default async function (payload, ctx) {
  const { mode = "exit", code = 1, onAttempt } = payload ?? {};
  if (onAttempt !== undefined && ctx.attempt !== onAttempt) {
    return { survived: true, attempt: ctx.attempt, node: ctx.node.id };
  }
  return crash(mode, ctx, code);
}
