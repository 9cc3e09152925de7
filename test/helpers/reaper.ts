/**
 * Kills, when a test file ends, the child processes its helpers spawned that are still
 * running. A test that times out never reaches its `finally` (the await it hangs on never
 * settles), and its crew primaries and redis-servers outlived the run, using CPU and
 * ports while the next files ran. A child spawned detached is killed with its group.
 */
import type { ChildProcess } from "node:child_process";
import { afterAll } from "vitest";

/** Running children, and whether each leads its own process group. */
const live = new Map<ChildProcess, boolean>();

// At the top level of a module the test file imports: registered on that file's suite.
afterAll(() => {
  for (const [child, group] of live) {
    try {
      process.kill(group ? -child.pid! : child.pid!, "SIGKILL");
    } catch {
      // gone already
    }
  }
  live.clear();
});

/** Kills `child` at the end of the test file if it still runs then; `group`: it leads its process group (spawned detached). */
export function reap(child: ChildProcess, group = false): ChildProcess {
  if (child.pid === undefined) return child;
  live.set(child, group);
  child.once("exit", () => live.delete(child));
  return child;
}
