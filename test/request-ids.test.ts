/**
 * Request ids: unique across primaries and restarts (issue 10), the same in ctx.requestId
 * and in every reply's meta.requestId; handlers see the request's idempotency key.
 */
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { createCluster, type Cluster } from "crew";
import { NdjsonSocket } from "./helpers/ndjson-socket.js";
import { PrimaryProcess } from "./helpers/primary-process.js";

const IDS = fileURLToPath(new URL("./fixtures/ids", import.meta.url));

const cleanup: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  while (cleanup.length > 0) await cleanup.pop()!();
});

/** One TCP request to a primary in a child process, answered as a whole reply frame. */
async function askProcess(frame: Record<string, unknown>): Promise<Record<string, any>> {
  const primary = await PrimaryProcess.start(["--handlers", IDS, "--threads", "1", "--port", "0", "--http-port", "0"]);
  cleanup.push(() => primary.stop());
  const port = (await primary.waitFor("listening")).port as number;
  const socket = await NdjsonSocket.connect(port);
  cleanup.push(async () => socket.socket.destroy());
  return (await socket.request({ id: 1, handler: "whoami", ...frame })) as Record<string, any>;
}

describe("request ids", () => {
  it("two primaries, each on its first request, give different ids, and meta.requestId is ctx.requestId", async () => {
    const [a, b] = await Promise.all([askProcess({}), askProcess({})]);
    expect(a).toMatchObject({ ok: true, meta: { requestId: a.result.requestId } });
    expect(b).toMatchObject({ ok: true, meta: { requestId: b.result.requestId } });
    expect(a.result.requestId).not.toBe(b.result.requestId);
  });

  it("every reply's meta carries the id, errors too, and handlers get the idempotency key", async () => {
    const cluster: Cluster = await createCluster({ handlers: IDS, threads: 1, logLevel: "silent" });
    cleanup.push(() => cluster.close());
    const keyed = await cluster.call("whoami", null, { idempotencyKey: "order-17" });
    expect(keyed).toMatchObject({ ok: true, result: { idempotencyKey: "order-17", attempt: 1 } });
    expect(keyed.meta.requestId).toBe((keyed as { result: { requestId: string } }).result.requestId);
    const plain = await cluster.call("whoami");
    expect(plain).toMatchObject({ ok: true, result: { idempotencyKey: null } });
    expect(plain.meta.requestId).not.toBe(keyed.meta.requestId);
    const failed = await cluster.call("whoami", { fail: true });
    expect(failed).toMatchObject({ ok: false, error: { code: "E_HANDLER", message: `refused ${failed.meta.requestId}` } });
  });
});
