/**
 * `crew start` forks the thread host before it loads the rest of itself
 * (nodes/host-prefork.ts): the thread nodes run in that process, and when no thread node
 * needs it (process nodes only, threads in the primary) it is killed once the cluster is up.
 */
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { CrewProcess, gone } from "./helpers/crew-process.js";

const WORKERS = fileURLToPath(new URL("../workers", import.meta.url));
const started: CrewProcess[] = [];

afterEach(() => {
  for (const crew of started.splice(0)) crew.kill();
});

function crew(args: string[]): CrewProcess {
  const c = new CrewProcess(["--handlers", WORKERS, "--log-level", "info", ...args]);
  started.push(c);
  return c;
}

/** The live thread hosts among `parent`'s children (a zombie is not one). */
function hostsOf(parent: number): number[] {
  const ps = spawnSync("ps", ["--ppid", String(parent), "-o", "pid=,stat=,args="], { encoding: "utf8" }).stdout;
  return ps
    .split("\n")
    .map((line) => line.trim().split(/\s+/))
    .filter(([pid, stat, ...args]) => pid && !stat!.startsWith("Z") && args.some((a) => a.endsWith("host-entry.js")))
    .map(([pid]) => Number(pid));
}

describe("the thread host forked ahead", () => {
  it("is the process the thread nodes run in, and the only host", async () => {
    const c = crew(["--threads", "2"]);
    await c.port();
    const host = await c.waitFor((l) => l.msg === "thread host started", "thread host started");
    expect(host.preforked).toBe(true);
    const ups = c.lines.filter((l) => l.msg === "node up");
    expect(ups.map((l) => l.pid)).toEqual([host.pid, host.pid]);
    expect(hostsOf(c.pid)).toEqual([host.pid]);
  });

  for (const [what, args] of [
    ["process nodes only", ["--threads", "0", "--processes", "1"]],
    ["thread nodes in the primary", ["--threads", "1", "--thread-host", "primary"]],
  ] as const) {
    it(`is killed when nobody needs it: ${what}`, async () => {
      const c = crew([...args]);
      await c.port();
      expect(c.lines.some((l) => l.msg === "thread host started")).toBe(false);
      // Killed by the time the cluster is up; a wait, not a sleep: each pid until it is gone.
      for (const pid of hostsOf(c.pid)) await gone(pid);
      expect(hostsOf(c.pid)).toEqual([]);
      expect(c.running).toBe(true);
    });
  }
});
