/**
 * Starts that never end: a handler whose import never settles. createCluster (and so
 * `crew start`) fails naming the file once nodeStartTimeoutMs has passed, leaving no
 * node behind; a node whose restart hangs is killed and retried with backoff.
 */
import { mkdtempSync, cpSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { createCluster, HandlerLoadError } from "crew";
import { LogCapture } from "./helpers/cluster.js";
import { CrewProcess } from "./helpers/crew-process.js";

const HANG = fileURLToPath(new URL("./fixtures/nodes/hang", import.meta.url));
const HANGS = join(HANG, "hangs.js");

describe.each([
  { kind: "thread", nodes: { threads: 1 } },
  { kind: "process", nodes: { processes: 1 } },
])("a $kind node whose handler import never settles", ({ nodes }) => {
  it("fails createCluster with HandlerLoadError naming the file and the option", async () => {
    const err = await createCluster({ handlers: HANG, ...nodes, nodeStartTimeoutMs: 3000, logLevel: "silent" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HandlerLoadError);
    expect((err as Error).message).toBe(`${HANGS} did not finish loading within 3000 ms (nodeStartTimeoutMs, --node-start-timeout-ms)`);
  });
});

it("crew start exits 1 naming the file", async () => {
  const c = new CrewProcess(["--handlers", HANG, "--threads", "1", "--node-start-timeout-ms", "3000"]);
  let stderr = "";
  c.child.stderr!.on("data", (d: Buffer) => (stderr += d));
  expect(await c.exited).toEqual({ code: 1, signal: null });
  expect(stderr).toContain(`${HANGS} did not finish loading within 3000 ms`);
});

it("kills a restarting node whose import hangs, and retries it with backoff until it loads", async () => {
  const dir = mkdtempSync(join(tmpdir(), "crew-hang-"));
  cpSync(join(HANG, "fine.js"), join(dir, "fine.js"));
  const logs = new LogCapture();
  const cluster = await createCluster({ handlers: dir, processes: 1, nodeStartTimeoutMs: 3000, restartBackoffMs: 10, restartBackoffMaxMs: 40, logger: logs.logger });
  try {
    // From now on the folder's module hangs on import: the restart after a kill cannot finish.
    writeFileSync(join(dir, "fine.js"), "await new Promise(() => {});\nexport default () => 'fine';\n");
    cluster.killNode("p0");
    const failures = await logs.waitForCount(2, "node failed to restart", { node: "p0" });
    expect(failures[0]!.err).toMatch(/fine\.js did not finish loading within 3000 ms/);
    const restarting = logs.find("node restarting", { node: "p0" });
    expect(restarting.map((l) => l.delayMs as number).slice(0, 3)).toEqual([10, 20, 40]);
    // The module loads again: the next retry brings the node up.
    const from = logs.lines.length;
    writeFileSync(join(dir, "fine.js"), "export default () => 'fine again';\n");
    await logs.waitFor("node up", { node: "p0" }, from);
    expect(await cluster.run("fine")).toBe("fine again");
  } finally {
    await cluster.close();
  }
});
