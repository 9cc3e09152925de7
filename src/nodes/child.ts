/**
 * Starting a process the primary owns (a process node, or the host of the thread nodes):
 * forked with IPC, in its own process group (detached), its stdout and stderr read into
 * the primary's log. Killing it signals the whole group, so a program a handler started
 * (`sleep 30`) ends with the node. Inside, node-runtime/watchdog.ts ends the group when
 * the primary dies.
 */
import { type ChildProcess, fork } from "node:child_process";
import type { Logger } from "pino";
import type { ExitInfo } from "./transport.js";
import { relayOutput, type RelayState } from "./output-relay.js";

export interface NodeProcess {
  child: ChildProcess;
  output: RelayState;
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

export function forkNodeProcess(entry: string, options: { env: NodeJS.ProcessEnv; execArgv: string[]; log: Logger; source: Record<string, unknown> }): NodeProcess {
  const child = fork(entry, [], {
    env: options.env,
    execArgv: options.execArgv,
    serialization: "json",
    stdio: ["ignore", "pipe", "pipe", "ipc"],
    detached: true,
  });
  const output: RelayState = { outOfMemory: false };
  relayOutput(child.stdout!, options.log, options.source, "stdout", output);
  relayOutput(child.stderr!, options.log, options.source, "stderr", output);
  return {
    child,
    output,
    kill() {
      const pid = child.pid;
      if (pid === undefined) return;
      try {
        process.kill(-pid, "SIGKILL");
      } catch {
        // the group is gone already (every process in it exited)
      }
    },
  };
}

/** How a node process ended, as crash logs say it: V8's out-of-memory abort is "out of memory". */
export function processExit(code: number | null, signal: NodeJS.Signals | null, output: RelayState, channelLost: boolean): ExitInfo {
  if (channelLost) return { code, signal, reason: "IPC channel lost" };
  if (output.outOfMemory && (signal === "SIGABRT" || signal === "SIGTRAP" || code === 134)) return { code, signal, reason: "out of memory" };
  if (signal) return { code, signal, reason: `killed by ${signal}` };
  return { code, signal, reason: `exited with code ${code}` };
}
