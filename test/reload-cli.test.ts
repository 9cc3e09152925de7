/** `crew reload` and SIGHUP against a real `crew start` process (issue 14). */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HandlerFolder } from "./helpers/handler-folder.js";

const BIN = "bin/crew.js";

function crew(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d));
  child.stderr.on("data", (d: Buffer) => (stderr += d));
  return once(child, "close").then(([code]) => ({ code: code as number | null, stdout, stderr }));
}

describe("crew reload and SIGHUP", () => {
  const folder = new HandlerFolder();
  let server: ChildProcess;
  let port: number;
  let httpPort: number;
  /** The primary's log lines, parsed, and waiters for the next one with a given msg. */
  const lines: Array<Record<string, unknown>> = [];
  const waiters: Array<{ msg: string; from: number; resolve: (l: Record<string, unknown>) => void }> = [];
  const logLine = (msg: string, from: number) =>
    new Promise<Record<string, unknown>>((resolve) => {
      const found = lines.slice(from).find((l) => l.msg === msg);
      if (found) resolve(found);
      else waiters.push({ msg, from, resolve });
    });

  beforeAll(async () => {
    folder.writeVersion("version", 1);
    server = spawn(process.execPath, [BIN, "start", "--handlers", folder.dir, "--port", "0", "--http-port", "0", "--threads", "2"], { stdio: ["ignore", "pipe", "inherit"] });
    createInterface({ input: server.stdout! }).on("line", (text) => {
      const line = JSON.parse(text) as Record<string, unknown>;
      lines.push(line);
      for (const w of [...waiters]) {
        if (w.msg !== line.msg) continue;
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(line);
      }
    });
    const listening = await logLine("listening", 0);
    ({ port, httpPort } = listening as { port: number; httpPort: number });
  });

  afterAll(() => {
    server.kill("SIGKILL");
    folder.dispose();
  });

  it("crew reload prints what changed; the next request runs the new code", async () => {
    folder.writeVersion("version", 2);
    const out = await crew(["reload", "--http-port", String(httpPort)]);
    expect(out.code).toBe(0);
    expect(out.stdout).toMatch(/changed: version \([0-9a-f]{8}\)/);
    expect(out.stdout).toContain("t0 → t2, t1 → t3");
    const run = await crew(["run", "version", "--port", String(port)]);
    expect(JSON.parse(run.stdout)).toMatchObject({ v: 2 });
  });

  it("crew reload names the file that does not load and exits 1; the old code serves", async () => {
    folder.write("bad.js", "export default (p) => p +;\n");
    const out = await crew(["reload", "--http-port", String(httpPort)]);
    expect(out.code).toBe(1);
    expect(out.stderr).toContain(folder.path("bad.js"));
    expect(out.stderr).toContain("E_HANDLER_LOAD");
    const run = await crew(["run", "version", "--port", String(port)]);
    expect(JSON.parse(run.stdout)).toMatchObject({ v: 2 });
    folder.remove("bad.js");
  });

  it("SIGHUP reloads", async () => {
    folder.writeVersion("version", 3);
    const from = lines.length;
    server.kill("SIGHUP");
    const done = await logLine("reload done", from);
    expect(done).toMatchObject({ reason: "SIGHUP", changed: ["version"] });
    const run = await crew(["run", "version", "--port", String(port)]);
    expect(JSON.parse(run.stdout)).toMatchObject({ v: 3 });
  });
});
