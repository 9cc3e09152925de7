/**
 * The budget of unread replies (protocol/unread-replies.ts) on real loopback sockets whose
 * peers read nothing: a write past the high-water mark backs a socket up, as a large
 * reply does for a moment even to a client that reads. Under twice the budget, only a
 * connection backed up for the grace period is cut; past twice, the largest goes at once.
 */
import { once } from "node:events";
import { createServer, connect, type Server, type Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { UnreadReplies } from "../dist/protocol/unread-replies.js";
import { LogCapture } from "./helpers/cluster.js";

const MB = 1024 * 1024;
const CUT = "replies unread across connections over maxPendingBytes: cutting the connection holding the most";
let server: Server | null = null;
const open: Socket[] = [];

afterEach(async () => {
  for (const s of open.splice(0)) s.destroy();
  server?.close();
  server = null;
});

/** `count` server-side sockets whose clients never read. */
async function unreadSockets(count: number): Promise<Socket[]> {
  const accepted: Socket[] = [];
  server = createServer((s) => accepted.push(s));
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as { port: number };
  for (let i = 0; i < count; i++) {
    const client = connect(port, "127.0.0.1");
    client.pause();
    open.push(client);
    await once(client, "connect");
  }
  while (accepted.length < count) await new Promise((r) => setImmediate(r));
  open.push(...accepted);
  return accepted;
}

/** Writes `bytes` to `socket` and tells the budget, as a front does after a reply. */
function reply(unread: UnreadReplies, socket: Socket, bytes: number): void {
  socket.write(Buffer.alloc(bytes, 120));
  unread.wrote(socket);
}

describe("the budget of unread replies", () => {
  it("under twice the budget, cuts the largest holder only once it has stayed backed up for the grace period", async () => {
    const logs = new LogCapture();
    const unread = new UnreadReplies(8 * MB, logs.logger);
    const [a, b] = await unreadSockets(2);
    reply(unread, a!, 6 * MB);
    reply(unread, b!, 5 * MB); // over the budget now, under twice it
    expect(a!.destroyed || b!.destroyed).toBe(false);
    const cut = await logs.waitFor(CUT);
    expect(cut).toMatchObject({ limit: 8 * MB });
    await once(a!, "close");
    expect(b!.destroyed).toBe(false);
  });

  it("past twice the budget, cuts the largest holder at once", async () => {
    const logs = new LogCapture();
    const unread = new UnreadReplies(2 * MB, logs.logger);
    const [a, b] = await unreadSockets(2);
    reply(unread, a!, 3 * MB);
    reply(unread, b!, 8 * MB);
    expect(b!.destroyed).toBe(true);
    expect(a!.destroyed).toBe(false);
    expect(logs.find(CUT)).toHaveLength(1);
  });
});
