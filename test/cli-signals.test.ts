/**
 * `crew start` and signals, as a real process: no signal kills the primary by its default
 * action. SIGTERM while the nodes load exits 0 with a log line; SIGHUP reloads the
 * handlers and the primary serves on; a drain logs what it waits for; a second SIGINT during
 * the drain answers the waiting client E_SHUTTING_DOWN and exits at once.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { createInterface, type Interface } from "node:readline";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { Client } from "../dist/protocol/client.js";

const BIN = fileURLToPath(new URL("../bin/crew.js", import.meta.url));
const FIXTURES = fileURLToPath(new URL("./fixtures/signals", import.meta.url));

interface LogLine {
  msg: string;
  [key: string]: unknown;
}

/** A running `crew start` whose JSON log lines can be awaited one by one. */
class Crew {
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly lines: LogLine[] = [];
  readonly #reader: Interface;
  #waiters: Array<() => void> = [];

  constructor(args: string[]) {
    this.child = spawn(process.execPath, [BIN, "start", "--port", "0", "--http-port", "0", ...args], { stdio: ["ignore", "pipe", "pipe"] });
    this.exited = once(this.child, "exit").then(([code, signal]) => ({ code: code as number | null, signal: signal as NodeJS.Signals | null }));
    this.#reader = createInterface({ input: this.child.stdout! });
    this.#reader.on("line", (text) => {
      try {
        this.lines.push(JSON.parse(text) as LogLine);
      } catch {
        return;
      }
      for (const wake of this.#waiters.splice(0)) wake();
    });
    this.child.stdout!.on("close", () => {
      for (const wake of this.#waiters.splice(0)) wake();
    });
  }

  /** The first log line matching `test`; rejects if the output ends without one. */
  async line(test: (l: LogLine) => boolean): Promise<LogLine> {
    for (;;) {
      const found = this.lines.find(test);
      if (found) return found;
      if (this.child.stdout!.readableEnded) throw new Error(`no such log line; got: ${this.lines.map((l) => l.msg).join(" | ")}`);
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
  }

  msg(text: string): Promise<LogLine> {
    return this.line((l) => l.msg === text);
  }
}

const started: Crew[] = [];
function crew(args: string[]): Crew {
  const c = new Crew(args);
  started.push(c);
  return c;
}
afterEach(() => {
  for (const c of started.splice(0)) if (c.child.exitCode === null && c.child.signalCode === null) c.child.kill("SIGKILL");
});

describe("crew start and signals", () => {
  it("SIGTERM while the nodes are still loading exits 0 with a log line, not by the signal", async () => {
    const c = crew(["--handlers", `${FIXTURES}/hang`, "--threads", "1", "--kill-grace-ms", "200"]);
    await c.msg("starting nodes");
    c.child.kill("SIGTERM");
    expect(await c.exited).toEqual({ code: 0, signal: null });
    expect(await c.msg("signal received while the nodes were starting: stopping them")).toMatchObject({ signal: "SIGTERM" });
  });

  it("SIGHUP reloads the handlers and the primary serves on (SIGTERM then drains it)", async () => {
    const c = crew(["--handlers", `${FIXTURES}/hold`, "--threads", "1"]);
    await c.msg("listening");
    c.child.kill("SIGHUP");
    expect(await c.msg("reload done")).toMatchObject({ reason: "SIGHUP", replaced: [{ from: "t0", to: "t1" }] });
    expect(c.child.exitCode).toBe(null);
    c.child.kill("SIGTERM");
    expect(await c.exited).toEqual({ code: 0, signal: null });
    expect(await c.msg("signal received: draining")).toMatchObject({ signal: "SIGTERM" });
  });

  it("a drain logs what it waits for; a second SIGINT answers the waiting client E_SHUTTING_DOWN and exits at once", async () => {
    const c = crew(["--handlers", `${FIXTURES}/hold`, "--threads", "1", "--drain-timeout-ms", "3600000"]);
    const { port } = (await c.msg("listening")) as LogLine & { port: number };
    const client = new Client({ port });
    try {
      const reply = client.call("hold", {});
      await c.msg("holding");
      c.child.kill("SIGINT");
      const waiting = await c.line((l) => l.msg.startsWith("draining: waiting for"));
      expect(waiting).toMatchObject({ msg: "draining: waiting for 1 request(s)", active: 1, busyNodes: ["t0:1"] });
      c.child.kill("SIGINT");
      const answer = await reply;
      expect(answer.ok).toBe(false);
      expect(answer.error?.code).toBe("E_SHUTTING_DOWN");
      expect(await c.exited).toEqual({ code: 1, signal: null });
      expect(await c.msg("second signal: ending the drain; what is left answers E_SHUTTING_DOWN")).toMatchObject({ signal: "SIGINT" });
    } finally {
      await client.close();
    }
  });
});
