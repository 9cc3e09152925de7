/**
 * A real `crew` command in a child process: its JSON log lines parsed as they come, so a
 * test waits for a line (a handler's console.log relayed with its node id, "listening")
 * instead of sleeping, and the process's exit as a promise. `CrewChild` is the one
 * mechanism; `CrewProcess` (below), `PrimaryProcess` (journal tests) and `CrewHost`
 * (several-hosts tests) are thin shapes of it for their tests.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { reap } from "./reaper.js";

const BIN = fileURLToPath(new URL("../../bin/crew.js", import.meta.url));

export type Line = { msg: string } & Record<string, unknown>;
export type Exit = { code: number | null; signal: NodeJS.Signals | null };

/** True when `line` has this msg and every field equal. */
export function matches(line: Line, msg: string, fields: Record<string, unknown> = {}): boolean {
  return line.msg === msg && Object.entries(fields).every(([k, v]) => line[k] === v);
}

export class CrewChild {
  readonly child: ChildProcess;
  readonly lines: Line[] = [];
  /** What the process wrote to stderr, in chunks. */
  readonly stderr: string[] = [];
  readonly exited: Promise<Exit>;
  #waiters = new Set<() => void>();

  /**
   * Spawns `node bin/crew.js ARGS` (ARGS starts with the subcommand). `fileSizeKb` caps
   * the size of any file the process writes (`ulimit -f`, with SIGXFSZ ignored): a write
   * past it fails with EFBIG, as on a full disk, without touching the machine's disks.
   * (`ulimit -f` counts 512-byte blocks in a POSIX shell: dash, or bash as sh.)
   */
  constructor(args: string[], options: { detached?: boolean; fileSizeKb?: number } = {}) {
    const [command, argv] = options.fileSizeKb === undefined
      ? [process.execPath, [BIN, ...args]]
      : ["/bin/sh", ["-c", `trap '' XFSZ; ulimit -f ${options.fileSizeKb * 2} && exec "$@"`, "sh", process.execPath, BIN, ...args]];
    this.child = reap(spawn(command, argv, { stdio: ["ignore", "pipe", "pipe"], detached: options.detached ?? false }), options.detached ?? false);
    this.exited = new Promise((resolve) =>
      this.child.on("exit", (code, signal) => {
        resolve({ code, signal });
        this.#wake();
      }),
    );
    this.child.stderr!.setEncoding("utf8").on("data", (chunk: string) => {
      this.stderr.push(chunk);
      this.#wake();
    });
    createInterface({ input: this.child.stdout! }).on("line", (text) => {
      let line: Line = { msg: text, raw: true };
      try {
        const parsed: unknown = JSON.parse(text);
        if (typeof parsed === "object" && parsed !== null) line = parsed as Line;
      } catch {
        // a line that is not JSON (--pretty): kept as text
      }
      this.lines.push(line);
      this.#wake();
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /**
   * The first line from index `from` on (printed already or to come) that `pred` accepts.
   * Rejects when the process exits first, or after `timeoutMs`, with its last output.
   */
  waitUntil(pred: (line: Line) => boolean, what: string, from = 0, timeoutMs = 30_000): Promise<Line> {
    return new Promise((resolve, reject) => {
      const settle = (line: Line | null, why?: string) => {
        this.#waiters.delete(check);
        clearTimeout(timer);
        if (line) resolve(line);
        else reject(new Error(`crew ${why} ${what}; last lines:\n${this.lines.slice(-10).map((l) => JSON.stringify(l)).join("\n")}\n${this.stderr.join("").slice(-800)}`));
      };
      const check = () => {
        const found = this.lines.slice(from).find(pred);
        if (found) settle(found);
        else if (!this.running) settle(null, "exited before");
      };
      const timer = setTimeout(() => settle(null, "did not log"), timeoutMs);
      this.#waiters.add(check);
      check();
    });
  }

  signal(signal: NodeJS.Signals): void {
    if (this.running) this.child.kill(signal);
  }

  #wake(): void {
    for (const check of [...this.#waiters]) check();
  }
}

/** `crew start --port 0 --http-port 0 ARGS`. */
export class CrewProcess extends CrewChild {
  constructor(args: string[], options: { detached?: boolean } = {}) {
    super(["start", "--port", "0", "--http-port", "0", ...args], options);
  }

  /** The first line (already printed or to come) that `pred` accepts. */
  waitFor(pred: (line: Line) => boolean, what = "a log line"): Promise<Line> {
    return this.waitUntil(pred, what);
  }

  async port(): Promise<number> {
    return (await this.waitFor((l) => l.msg === "listening", "listening")).port as number;
  }

  kill(signal: NodeJS.Signals = "SIGKILL"): void {
    this.signal(signal);
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
