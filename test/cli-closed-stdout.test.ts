/**
 * `crew run … | head` and `crew status --watch | head`: when the reader of stdout goes
 * away, the command ends quietly with exit code 0, where it used to die on an unhandled
 * EPIPE with a stack trace on stderr (exit 1).
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCluster, type Cluster } from "crew";

const HANDLERS = fileURLToPath(new URL("../workers", import.meta.url));
const BIN = fileURLToPath(new URL("../bin/crew.js", import.meta.url));

let cluster: Cluster;
let address: string[];
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "crew-stdout-"));
  cluster = await createCluster({ handlers: HANDLERS, threads: 1, processes: 0 });
  const { port, httpPort } = await cluster.listen({ port: 0, httpPort: 0 });
  address = ["--port", String(port), "--http-port", String(httpPort!)];
});

afterAll(async () => {
  await cluster.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Runs the CLI, closes its stdout at the first bytes it prints (a `| head -c 1`), and returns how it ended. */
async function closingStdout(args: string[]): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, [BIN, ...args, ...address], { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => (stderr += d));
  child.stdout.once("data", () => child.stdout.destroy());
  const [code] = (await once(child, "close")) as [number | null];
  return { code, stderr };
}

describe("a CLI command whose stdout reader goes away", () => {
  it("crew run with a large result ends with code 0 and no stack trace", async () => {
    const payload = join(dir, "payload.json");
    writeFileSync(payload, JSON.stringify("x".repeat(900_000)));
    const { code, stderr } = await closingStdout(["run", "echo", `@${payload}`]);
    expect(stderr).not.toContain("EPIPE");
    expect(code).toBe(0);
  });

  it("crew status --watch ends with code 0 and no stack trace", async () => {
    const { code, stderr } = await closingStdout(["status", "--watch", "--interval-ms", "50"]);
    expect(stderr).not.toContain("EPIPE");
    expect(code).toBe(0);
  });
});
