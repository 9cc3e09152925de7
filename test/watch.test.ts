/** `--watch` (issue 14): a saved edit reloads, and a syntax error leaves the old code serving. */
import { afterEach, expect, it } from "vitest";
import { type Cluster, createCluster } from "crew";
import { LogCapture } from "./helpers/cluster.js";
import { HandlerFolder } from "./helpers/handler-folder.js";

let folder: HandlerFolder;
let cluster: Cluster;
let logs: LogCapture;

async function start(): Promise<void> {
  folder = new HandlerFolder();
  folder.writeVersion("version", 1);
  logs = new LogCapture();
  cluster = await createCluster({ handlers: folder.dir, threads: 2, watch: true, drainTimeoutMs: 1000, logger: logs.logger });
}

afterEach(async () => {
  await cluster?.close();
  folder?.dispose();
});

it("reloads when a handler is saved: the next request runs the new code", async () => {
  await start();
  expect(await cluster.run("version")).toMatchObject({ v: 1 });
  const from = logs.lines.length;
  folder.writeVersion("version", 2);
  const done = await logs.waitFor("reload done", { reason: "watch" }, from);
  expect(done.changed).toEqual(["version"]);
  expect(await cluster.run("version")).toMatchObject({ v: 2 });
  // A new file becomes a handler the same way.
  const next = logs.lines.length;
  folder.writeVersion("extra", 7);
  await logs.waitFor("reload done", { reason: "watch" }, next);
  expect(await cluster.run("extra")).toMatchObject({ v: 7 });
});

it("reports a syntax error with its file and keeps the old code serving, then takes the fix", async () => {
  await start();
  const nodes = cluster.nodes.map((n) => n.id);
  const from = logs.lines.length;
  folder.write("version.js", "export default () => ({ v: 2 ;\n");
  const failed = await logs.waitFor("reload failed: the old handlers keep serving", { reason: "watch" }, from);
  expect(failed.err).toContain(folder.path("version.js"));
  expect(cluster.nodes.map((n) => n.id)).toEqual(nodes);
  expect(await cluster.run("version")).toMatchObject({ v: 1 });

  const fix = logs.lines.length;
  folder.writeVersion("version", 3);
  await logs.waitFor("reload done", { reason: "watch" }, fix);
  expect(await cluster.run("version")).toMatchObject({ v: 3 });
});
