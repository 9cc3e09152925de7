/**
 * A real `crew start` in a child process: its JSON log lines parsed as they come, so a
 * test waits for a line (a handler's console.log relayed with its node id, "listening")
 * instead of sleeping, and the process's exit as a promise.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const BIN = fileURLToPath(new URL("../../bin/crew.js", import.meta.url));

export type Line = { msg: string } & Record<string, unknown>;

export class CrewProcess {
  readonly child: ChildProcess;
  readonly lines: Line[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  #waiters = new Set<() => void>();

  constructor(args: string[], options: { detached?: boolean } = {}) {
    this.child = spawn(process.execPath, [BIN, "start", "--port", "0", "--http-port", "0", ...args], {
      stdio: ["ignore", "pipe", "pipe"],
      detached: options.detached ?? false,
    });
    this.exited = new Promise((resolve) => this.child.on("exit", (code, signal) => resolve({ code, signal })));
    this.child.stderr!.resume();
    createInterface({ input: this.child.stdout! }).on("line", (text) => {
      let line: Line = { msg: text, raw: true };
      try {
        const parsed: unknown = JSON.parse(text);
        if (typeof parsed === "object" && parsed !== null) line = parsed as Line;
      } catch {
        // a line that is not JSON (--pretty): kept as text
      }
      this.lines.push(line);
      for (const check of [...this.#waiters]) check();
    });
  }

  /** The first line (already printed or to come) that `pred` accepts. */
  waitFor(pred: (line: Line) => boolean, what = "a log line"): Promise<Line> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const found = this.lines.find(pred);
        if (!found) return;
        this.#waiters.delete(check);
        resolve(found);
      };
      this.#waiters.add(check);
      check();
      void this.exited.then(() => {
        if (!this.#waiters.has(check)) return;
        this.#waiters.delete(check);
        reject(new Error(`crew exited before ${what}; last lines:\n${this.lines.slice(-10).map((l) => JSON.stringify(l)).join("\n")}`));
      });
    });
  }

  async port(): Promise<number> {
    return (await this.waitFor((l) => l.msg === "listening", "listening")).port as number;
  }

  kill(signal: NodeJS.Signals = "SIGKILL"): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
  }
}

/** True while a process with this pid exists (a zombie counts as gone). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  return !psField(pid, "stat").startsWith("Z");
}

/** One `ps -o FIELD=` column for a pid, trimmed ("" when there is no such process). */
export function psField(pid: number, field: string): string {
  return spawnSync("ps", ["-o", `${field}=`, "-p", String(pid)], { encoding: "utf8" }).stdout.trim();
}

/** Resolves once `pid` is gone; polls, since a process that is not our child gives no event. */
export async function gone(pid: number): Promise<void> {
  while (alive(pid)) await new Promise((resolve) => setTimeout(resolve, 50));
}
