// A crash injector, for tests, chaos runs and demos. payload: { mode, code, onAttempt }.
// With onAttempt set, only that attempt crashes; the others answer { survived: true }.
// Modes: exit, uncaught, unhandled, oom, loop, throw, sigkill, sigsegv (the last two
// kill the whole process, so they refuse to run on a thread node: that process is the primary).
export default async function crash(payload, ctx) {
  const { mode = "exit", code = 1, onAttempt } = payload ?? {};
  if (onAttempt !== undefined && ctx.attempt !== onAttempt) {
    return { survived: true, attempt: ctx.attempt, node: ctx.node.id };
  }
  switch (mode) {
    case "exit":
      process.exit(code);
    case "uncaught":
      setTimeout(() => {
        throw new Error("crash: uncaught exception outside the handler's promise");
      });
      return new Promise(() => {});
    case "unhandled":
      Promise.reject(new Error("crash: unhandled rejection"));
      return new Promise(() => {});
    case "oom": {
      const hoard = [];
      for (;;) hoard.push(new Array(1_000_000).fill(hoard.length));
    }
    case "loop":
      for (;;);
    case "throw":
      throw new Error("crash: the handler threw");
    case "sigkill":
    case "sigsegv":
      if (ctx.node.kind !== "process") throw new Error(`crash: ${mode} needs a process node`);
      process.kill(process.pid, mode === "sigkill" ? "SIGKILL" : "SIGSEGV");
      return new Promise(() => {});
    default:
      throw new Error(`crash: unknown mode ${JSON.stringify(mode)}`);
  }
}
