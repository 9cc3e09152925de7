/**
 * The thread host, forked ahead. `crew start` forks it first thing, before the primary
 * loads its own modules (yargs, pino, the cluster: ~350 ms of one core on a slow VM), so
 * the host's Node.js boot and imports run meanwhile on the other core instead of after
 * them; the first thread node then adopts it (thread-host.ts). Measured with
 * benchmarks/startup.js (README, Benchmarks).
 *
 * It is forked before the options are read, so it can turn out unneeded (no thread nodes,
 * `--thread-host primary`, `--help`): `crew start` discards it once createCluster has
 * returned (its nodes have started), and until adopted it holds neither the event loop nor, should the primary
 * die, anything else (its IPC channel closes and it ends its group: host-entry.ts).
 *
 * Nothing but node: modules and child.ts here: this module is loaded before anything else.
 */
import type { ChildProcess } from "node:child_process";
import type { Socket } from "node:net";
import { fileURLToPath } from "node:url";
import { forkDetached, killGroup } from "./child.js";

/** The host process's entry point. */
export const HOST_ENTRY = fileURLToPath(new URL("../node-runtime/host-entry.js", import.meta.url));
/** The host runs with no flags of the primary's (a --inspect port, say, would clash). */
export const HOST_EXEC_ARGV: string[] = [];

let spare: ChildProcess | null = null;

/** Forks the thread host now, with the environment as it is now, unless one is waiting. */
export function preforkThreadHost(): void {
  if (spare) return;
  try {
    spare = forkDetached(HOST_ENTRY, process.env, HOST_EXEC_ARGV);
  } catch {
    return; // the host is forked again when first needed, and that fork reports the error
  }
  const child = spare;
  child.on("error", () => discard(child));
  child.on("exit", () => discard(child));
  holdsLoop(child, false);
}

/** The host forked ahead, still alive, for the first thread node to adopt; or null. */
export function takePreforked(): ChildProcess | null {
  const child = spare;
  spare = null;
  if (!child || child.exitCode !== null || child.signalCode !== null || !child.connected) {
    if (child) discard(child);
    return null;
  }
  child.removeAllListeners("error");
  child.removeAllListeners("exit");
  holdsLoop(child, true);
  return child;
}

/** Whether `child` (the process, its IPC channel, its output pipes) keeps this process's event loop alive. */
function holdsLoop(child: ChildProcess, hold: boolean): void {
  for (const handle of [child, child.channel, child.stdout as Socket | null, child.stderr as Socket | null]) {
    if (hold) handle?.ref();
    else handle?.unref();
  }
}

/** Kills the host forked ahead if nobody adopted it (`crew start`, once createCluster has returned or failed). */
export function discardPreforked(): void {
  if (spare) discard(spare);
}

function discard(child: ChildProcess): void {
  if (spare === child) spare = null;
  if (child.exitCode === null && child.signalCode === null) killGroup(child);
}
