/**
 * One crew host as a real process (`crew start --redis …`), for the several-hosts tests:
 * its JSON log lines are kept so a test can wait on them, and it can be SIGKILLed,
 * SIGSTOPped and continued like any process.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";

const CREW = fileURLToPath(new URL("../../bin/crew.js", import.meta.url));
export const HOST_HANDLERS = fileURLToPath(new URL("../fixtures/hosts", import.meta.url));

export type Line = { msg: string } & Record<string, unknown>;

export class CrewHost {
  readonly lines: Line[] = [];
  readonly exited: Promise<void>;
  port = 0;
  httpPort = 0;
  readonly #child: ChildProcess;
  #waiters = new Set<() => void>();
  #tail = "";

  private constructor(readonly id: string, args: string[]) {
    this.#child = spawn(process.execPath, [CREW, "start", ...args], { stdio: ["ignore", "pipe", "pipe"] });
    this.#child.stdout!.setEncoding("utf8");
    this.#child.stdout!.on("data", (chunk: string) => this.#onData(chunk));
    this.#child.stderr!.on("data", (chunk: Buffer) => this.#tail = (this.#tail + chunk.toString()).slice(-4000));
    this.exited = once(this.#child, "exit").then(() => this.#wake());
  }

  /** Starts `crew start --redis url --host-id id` with `extra` flags; resolves once it listens. */
  static async start(id: string, redisUrl: string, cluster: string, extra: string[] = []): Promise<CrewHost> {
    const host = new CrewHost(id, [
      "--handlers", HOST_HANDLERS, "--redis", redisUrl, "--cluster", cluster, "--host-id", id,
      "--port", "0", "--http-port", "0", "--log-level", "info", ...extra,
    ]);
    const line = await host.waitFor("listening");
    host.port = line.port as number;
    host.httpPort = line.httpPort as number;
    return host;
  }

  get pid(): number {
    return this.#child.pid!;
  }

  signal(signal: NodeJS.Signals): void {
    this.#child.kill(signal);
  }

  async kill(): Promise<void> {
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) return;
    this.#child.kill("SIGKILL");
    await this.exited;
  }

  /** The first line with this msg and fields from index `from` on, logged already or to come. */
  waitFor(msg: string, fields: Record<string, unknown> = {}, from = 0, timeoutMs = 30_000): Promise<Line> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const found = this.lines.slice(from).find((l) => l.msg === msg && Object.entries(fields).every(([k, v]) => l[k] === v));
        if (found) {
          this.#waiters.delete(check);
          clearTimeout(timer);
          resolve(found);
        } else if (this.#child.exitCode !== null || this.#child.signalCode !== null) {
          this.#waiters.delete(check);
          clearTimeout(timer);
          reject(new Error(`host ${this.id} exited before logging ${msg}:\n${this.#tail}\n${this.lines.slice(-5).map((l) => JSON.stringify(l)).join("\n")}`));
        }
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(check);
        reject(new Error(`host ${this.id} did not log ${msg} ${JSON.stringify(fields)}; last:\n${this.lines.slice(-8).map((l) => JSON.stringify(l)).join("\n")}\n${this.#tail}`));
      }, timeoutMs);
      this.#waiters.add(check);
      check();
    });
  }

  #onData(chunk: string): void {
    const parts = (this.#buffer + chunk).split("\n");
    this.#buffer = parts.pop()!;
    for (const part of parts) {
      try {
        this.lines.push(JSON.parse(part) as Line);
      } catch {
        // not a log line
      }
    }
    this.#wake();
  }

  #buffer = "";

  #wake(): void {
    for (const check of [...this.#waiters]) check();
  }
}
