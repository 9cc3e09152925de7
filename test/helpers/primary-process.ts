/**
 * A primary in a child process (`bin/crew.js start`), for tests that kill it for real:
 * SIGKILL, then start another on the same journal and port. Its JSON log lines (stdout)
 * are kept, so a test waits on "listening" or "journaled requests queued again" instead
 * of sleeping.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";

const CREW = fileURLToPath(new URL("../../bin/crew.js", import.meta.url));

export type LogLine = { msg: string } & Record<string, unknown>;

export class PrimaryProcess {
  readonly lines: LogLine[] = [];
  readonly stderr: string[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly #child: ChildProcess;
  readonly #waiters = new Set<() => void>();

  private constructor(args: string[]) {
    this.#child = spawn(process.execPath, [CREW, "start", ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let buffered = "";
    this.#child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
      const parts = (buffered + chunk).split("\n");
      buffered = parts.pop() ?? "";
      for (const part of parts) {
        try {
          this.lines.push(JSON.parse(part) as LogLine);
        } catch {
          this.lines.push({ msg: part });
        }
      }
      for (const waiter of [...this.#waiters]) waiter();
    });
    this.#child.stderr!.setEncoding("utf8").on("data", (chunk: string) => {
      this.stderr.push(chunk);
      for (const waiter of [...this.#waiters]) waiter();
    });
    this.exited = once(this.#child, "exit").then(([code, signal]) => {
      for (const waiter of [...this.#waiters]) waiter();
      return { code: code as number | null, signal: signal as NodeJS.Signals | null };
    });
  }

  /** Starts `crew start ARGS` and resolves once it listens (rejects if it exits first). */
  static async start(args: string[]): Promise<PrimaryProcess> {
    const p = new PrimaryProcess(["--log-level", "info", ...args]);
    await p.waitFor("listening");
    return p;
  }

  /** Spawns `crew start ARGS` without waiting for anything (for starts that must fail). */
  static spawn(args: string[]): PrimaryProcess {
    return new PrimaryProcess(args);
  }

  get pid(): number {
    return this.#child.pid!;
  }

  /** Resolves with the first log line with this msg (and fields); rejects if the process exits first. */
  waitFor(msg: string, fields: Record<string, unknown> = {}): Promise<LogLine> {
    return new Promise((resolve, reject) => {
      let dead = false;
      void this.exited.then(() => (dead = true));
      const check = (): void => {
        const line = this.lines.find((l) => l.msg === msg && Object.entries(fields).every(([k, v]) => l[k] === v));
        if (line) {
          this.#waiters.delete(check);
          resolve(line);
        } else if (dead || this.#child.exitCode !== null || this.#child.signalCode !== null) {
          this.#waiters.delete(check);
          reject(new Error(`primary exited before logging ${JSON.stringify(msg)}: ${this.stderr.join("").slice(-800)}`));
        }
      };
      this.#waiters.add(check);
      check();
    });
  }

  /** kill -9, and resolves once it is gone. */
  async kill9(): Promise<void> {
    this.#child.kill("SIGKILL");
    await this.exited;
  }

  /** SIGTERM (a drain), and resolves once it has exited. */
  async stop(): Promise<void> {
    if (this.#child.exitCode === null && this.#child.signalCode === null) this.#child.kill("SIGTERM");
    await this.exited;
  }
}
