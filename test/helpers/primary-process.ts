/**
 * A primary in a child process (`bin/crew.js start`), for tests that kill it for real:
 * SIGKILL, then start another on the same journal and port. A test waits on its log lines
 * ("listening", "journaled requests queued again") instead of sleeping.
 */
import { CrewChild, type Line, matches } from "./crew-process.js";

export type LogLine = Line;

export class PrimaryProcess extends CrewChild {
  private constructor(args: string[], options: { fileSizeKb?: number } = {}) {
    super(["start", ...args], options);
  }

  /**
   * Starts `crew start ARGS` and resolves once it listens (rejects if it exits first).
   * `fileSizeKb`: no file it writes may grow past this (a full disk; see CrewChild).
   */
  static async start(args: string[], options: { fileSizeKb?: number } = {}): Promise<PrimaryProcess> {
    const p = new PrimaryProcess(["--log-level", "info", ...args], options);
    await p.waitFor("listening");
    return p;
  }

  /** Spawns `crew start ARGS` without waiting for anything (for starts that must fail). */
  static spawn(args: string[]): PrimaryProcess {
    return new PrimaryProcess(args);
  }

  /** Resolves with the first log line with this msg (and fields); rejects if the process exits first. */
  waitFor(msg: string, fields: Record<string, unknown> = {}): Promise<LogLine> {
    return this.waitUntil((l) => matches(l, msg, fields), JSON.stringify(msg), 0, 60_000);
  }

  /** kill -9, and resolves once it is gone. */
  async kill9(): Promise<void> {
    this.signal("SIGKILL");
    await this.exited;
  }

  /** SIGTERM (a drain), and resolves once it has exited. */
  async stop(): Promise<void> {
    this.signal("SIGTERM");
    await this.exited;
  }
}
