/**
 * A process started by the primary (a process node, or the host of the thread nodes)
 * dies with the primary and leaves shutdown to it.
 *
 * - Parent death: a small worker thread, which runs even while the node's main thread is
 *   blocked in an endless loop, polls the parent pid every 250 ms; when the primary is
 *   gone (the node was re-parented) it SIGKILLs the node's whole process group, so a
 *   program the handler started dies too. Cost: ~9 MB of RSS per process (measured with
 *   Node 20). Linux's PR_SET_PDEATHSIG would need a native addon, and covers the node only.
 * - Signals: Ctrl-C in a terminal and systemd's stop (SIGTERM to the whole control group)
 *   also reach the nodes. They ignore SIGINT, SIGTERM and SIGHUP: the primary drains, then
 *   stops them, so nothing dies as a crash and nothing runs twice.
 */
import { Worker } from "node:worker_threads";

const POLL_MS = 250;

/** The watchdog thread's code: `parent` is the primary's pid as the node saw it at start. */
function watchdogCode(parent: number): string {
  return `setInterval(() => {
    if (process.ppid === ${parent}) return;
    try { process.kill(-process.pid, "SIGKILL"); } catch {}
    process.kill(process.pid, "SIGKILL");
  }, ${POLL_MS});`;
}

/**
 * Signals this process's group: the node (which leads it) and the programs its handlers
 * started. The node itself ignores SIGTERM (see dieWithPrimary); SIGKILL ends it too.
 */
export function endGroup(signal: "SIGTERM" | "SIGKILL"): void {
  try {
    process.kill(-process.pid, signal);
  } catch {
    // not a group leader (started by hand): only this process
    if (signal === "SIGKILL") process.kill(process.pid, signal);
  }
}

export function dieWithPrimary(): void {
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(signal, () => {});
  const watchdog = new Worker(watchdogCode(process.ppid), { eval: true, resourceLimits: { maxOldGenerationSizeMb: 8 }, stdout: true, stderr: true });
  watchdog.unref();
  watchdog.on("error", () => {}); // a watchdog that failed must not take the node with it
}
