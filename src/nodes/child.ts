/**
 * Starting a process the primary owns (a process node, or the host of the thread nodes):
 * forked with IPC, in its own process group (detached), its stdout and stderr read into
 * the primary's log. Killing it signals the whole group, so a program a handler started
 * (`sleep 30`) ends with the node. Inside, node-runtime/watchdog.ts ends the group when
 * the primary dies.
 */
import { type ChildProcess, fork } from "node:child_process";
import { readFileSync } from "node:fs";
import type { Logger } from "pino";
import type { ExitInfo } from "./transport.js";
import { relayOutput, type RelayState } from "./output-relay.js";

export interface NodeProcess {
  child: ChildProcess;
  output: RelayState;
  /** Why crew itself killed the process, when it did for a reason of its own ("IPC channel lost"); the crash's reason. */
  cause: string | null;
  /** SIGKILLs the process and every process in its group; safe after it died. */
  kill(): void;
}

/** How long the pipes may stay open after the process exited (held by a program it started). */
const PIPES_GRACE_MS = 1000;

/**
 * Calls `ended(code, signal)` once, when the process has exited and its IPC and output
 * have delivered their last messages and lines ('close'). At its exit the rest of its
 * group is killed (what it started dies with it), and pipes still held open by a
 * program that escaped the group delay the report by at most 1 s.
 */
export function onEnded(node: NodeProcess, ended: (code: number | null, signal: NodeJS.Signals | null) => void): void {
  const { child } = node;
  let done = false;
  const once = (code: number | null, signal: NodeJS.Signals | null) => {
    if (done) return;
    done = true;
    ended(code, signal);
  };
  child.on("close", once);
  child.on("exit", (code, signal) => {
    node.kill();
    setTimeout(() => {
      child.stdout?.destroy();
      child.stderr?.destroy();
      once(code, signal);
    }, PIPES_GRACE_MS).unref();
  });
}

/** SIGKILLs `child` and every process in its group (it leads one: forkDetached); safe after it died. */
export function killGroup(child: ChildProcess): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, "SIGKILL");
  } catch {
    // the group is gone already (every process in it exited)
  }
}

/**
 * Forks `entry` the way every node process is forked: JSON over IPC, stdout and stderr
 * piped (read once the process is adopted by forkNodeProcess; until then they wait in
 * their pipes), and leading a process group of its own (detached).
 */
export function forkDetached(entry: string, env: NodeJS.ProcessEnv, execArgv: string[]): ChildProcess {
  return fork(entry, [], { env, execArgv, serialization: "json", stdio: ["ignore", "pipe", "pipe", "ipc"], detached: true });
}

/**
 * Forks `entry` as a node process, or adopts `child`, forked earlier by forkDetached with
 * the same entry, env and execArgv (host-prefork.ts). `frozenMs` > 0: the process is
 * killed once it has been seen stopped for that long (watchFrozen).
 */
export function forkNodeProcess(
  entry: string,
  options: { env: NodeJS.ProcessEnv; execArgv: string[]; log: Logger; source: Record<string, unknown>; frozenMs: number; child?: ChildProcess },
): NodeProcess {
  const child = options.child ?? forkDetached(entry, options.env, options.execArgv);
  const output: RelayState = { outOfMemory: false };
  relayOutput(child.stdout!, options.log, options.source, "stdout", output);
  relayOutput(child.stderr!, options.log, options.source, "stderr", output);
  const node: NodeProcess = {
    child,
    output,
    cause: null,
    kill: () => killGroup(child),
  };
  if (options.frozenMs > 0) watchFrozen(node, options.frozenMs, options.log, options.source);
  return node;
}

/**
 * Kills a node process that stays stopped — SIGSTOP (or SIGTSTP, SIGTTIN) sent from
 * outside, the kernel's state "T" in /proc/<pid>/stat — for `frozenMs`: a frozen node
 * answers nothing, and its requests would wait for their deadlines while healthy nodes
 * idle. Killed, it takes the crash path: its requests are retried elsewhere from their
 * checkpoints, and it is restarted. A process under a debugger ("t", tracing stop) is left
 * alone. Polled every frozenMs / 4 (at least 50 ms); a read of that file costs ~10 µs.
 * Where /proc is missing (not Linux), nothing is watched.
 */
function watchFrozen(node: NodeProcess, frozenMs: number, log: Logger, source: Record<string, unknown>): void {
  const pid = node.child.pid;
  if (pid === undefined) return;
  const path = `/proc/${pid}/stat`;
  let since: number | null = null;
  const timer = setInterval(() => {
    let stopped: boolean;
    try {
      const stat = readFileSync(path, "latin1");
      // "pid (comm) S …": comm may hold spaces and parentheses; the state follows the last ")".
      stopped = stat.charCodeAt(stat.lastIndexOf(")") + 2) === 84; // "T"
    } catch {
      return clearInterval(timer); // gone (its exit is on the way), or no /proc here
    }
    if (!stopped) {
      since = null;
      return;
    }
    const now = performance.now();
    since ??= now;
    if (now - since < frozenMs) return;
    clearInterval(timer);
    node.cause = `stopped (SIGSTOP) for over ${frozenMs} ms (frozenNodeMs, --frozen-node-ms)`;
    log.warn({ ...source, pid, frozenMs }, "node process stopped from outside: killing it, its requests are retried");
    node.kill();
  }, Math.max(50, Math.floor(frozenMs / 4)));
  timer.unref();
  node.child.once("exit", () => clearInterval(timer));
}

/** How a node process ended, as crash logs say it: V8's out-of-memory abort is "out of memory". */
export function processExit(code: number | null, signal: NodeJS.Signals | null, { output, cause }: NodeProcess): ExitInfo {
  if (cause) return { code, signal, reason: cause };
  if (output.outOfMemory && (signal === "SIGABRT" || signal === "SIGTRAP" || code === 134)) return { code, signal, reason: "out of memory" };
  if (signal) return { code, signal, reason: `killed by ${signal}` };
  return { code, signal, reason: `exited with code ${code}` };
}
