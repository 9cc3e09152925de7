/**
 * A call whose frame the primary refuses as too large (E_FRAME_TOO_LARGE, sent with
 * "id": null before the primary closes the connection) fails with that error, on a
 * plain and on a resubmitting client, and the client's other calls still get their
 * replies. Before, a resubmitting client (the one `crew run` uses) sent the refused
 * frame again after every reconnect until the call's deadline (60 s by default).
 */
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Client, createCluster, type Cluster, FrameTooLargeError } from "crew";

const HANDLERS = fileURLToPath(new URL("../workers", import.meta.url));

let cluster: Cluster;
let port: number;

beforeAll(async () => {
  cluster = await createCluster({ handlers: HANDLERS, threads: 1, processes: 0, maxFrameBytes: 4096 });
  ({ port } = await cluster.listen({ port: 0 }));
});

afterAll(async () => {
  await cluster.close();
});

describe("a frame over the primary's --max-frame-bytes", () => {
  for (const resubmit of [false, true]) {
    it(`fails that call with E_FRAME_TOO_LARGE (resubmit: ${resubmit}), and the client goes on`, async () => {
      const client = new Client({ port, resubmit, resubmitTimeoutMs: 600_000 });
      try {
        expect(await client.run("echo", "before")).toBe("before");
        const big = client.run("echo", "x".repeat(10_000)).then(
          () => undefined,
          (err: unknown) => err,
        );
        // Sent behind the refused frame: dropped with the connection, so only a resubmitting client gets it through.
        const behind = resubmit ? client.run("echo", "behind") : undefined;
        const error = await big;
        expect(error).toBeInstanceOf(FrameTooLargeError);
        expect((error as { code: string }).code).toBe("E_FRAME_TOO_LARGE");
        if (behind) expect(await behind).toBe("behind");
        expect(await client.run("echo", "after")).toBe("after");
      } finally {
        await client.close();
      }
    });
  }
});
