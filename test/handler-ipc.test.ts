/**
 * A process node's IPC channel is shared with its handlers: `process.send()` in handler
 * code (pm2's `process.send("ready")`, a library written for node:cluster workers)
 * writes on the channel crew reads its batches from. No such message may end the
 * primary, with a real `crew start`: what is not one of crew's batches is dropped, and
 * the node serves on.
 */
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { CrewProcess } from "./helpers/crew-process.js";
import { NdjsonSocket, SocketPool } from "./helpers/ndjson-socket.js";

const HANDLERS = fileURLToPath(new URL("./fixtures/nodes/ipc", import.meta.url));
const started: CrewProcess[] = [];
const sockets = new SocketPool();

afterEach(async () => {
  await sockets.closeAll();
  for (const crew of started.splice(0)) crew.kill();
});

async function startCrew(): Promise<{ crew: CrewProcess; socket: NdjsonSocket }> {
  const crew = new CrewProcess(["--handlers", HANDLERS, "--threads", "0", "--processes", "1", "--log-level", "info"]);
  started.push(crew);
  const socket = await sockets.open(await crew.port());
  return { crew, socket };
}

describe("a handler's own messages on its process's IPC channel", () => {
  it("are dropped, whatever their shape, and the primary and the node serve on", async () => {
    const { crew, socket } = await startCrew();
    const shapes: unknown[] = [{ cmd: "ready" }, null, 42, "ready", [null], [7, "x"], [{ t: 1 }], [{ a: 1 }]];
    for (const [i, msg] of shapes.entries()) {
      const reply = await socket.request({ id: i, handler: "send", payload: { msgs: [msg] } });
      expect(reply, JSON.stringify(msg)).toMatchObject({ ok: true, result: "sent", meta: { node: "p0", attempts: 1 } });
    }
    expect(await socket.request({ id: "after", handler: "early" })).toMatchObject({ ok: true, result: "loaded", meta: { node: "p0" } });
    expect(crew.running).toBe(true);
    // Dropped, not silently: the log names the node.
    const dropped = crew.lines.filter((l) => l.msg === "a message on the node's IPC channel is not crew's: dropped");
    expect(dropped.length).toBeGreaterThan(0);
    expect(dropped[0]).toMatchObject({ node: "p0" });
  });
});
