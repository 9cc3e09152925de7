/**
 * maxQueue bounds how many requests wait; maxPendingBytes bounds how much they weigh.
 * Without it, 1,000 frames of 1 MiB on one connection grew the primary past 1 GiB.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { type Cluster, createCluster } from "crew";
import { SocketPool } from "./helpers/ndjson-socket.js";

const FRAME_BYTES = 1000;
let cluster: Cluster;
let port: number;
const sockets = new SocketPool();
beforeAll(async () => {
  cluster = await createCluster({ handlers: "workers", threads: 1, maxPendingBytes: 4 * FRAME_BYTES + 500, logLevel: "silent" });
  ({ port } = await cluster.listen({ port: 0 }));
});
afterAll(async () => {
  await sockets.closeAll();
  await cluster?.close();
});

/** A run frame of exactly FRAME_BYTES (newline excluded) that sleeps far past the test. */
function frame(id: number): string {
  const head = `{"id":${id},"handler":"sleep","payload":{"ms":600000,"pad":"`;
  const tail = `"}}`;
  return head + "x".repeat(FRAME_BYTES - head.length - tail.length) + tail;
}

it("refuses with E_OVERLOADED once the pending requests weigh maxPendingBytes, and accepts again as they answer", async () => {
  const c = await sockets.open(port);
  await c.write([1, 2, 3, 4, 5, 6].map((id) => frame(id) + "\n").join(""));
  // Four fit the budget (4000 of 4500 bytes); the fifth and sixth would not.
  expect(await c.waitForId(5)).toMatchObject({ ok: false, error: { code: "E_OVERLOADED" } });
  expect(await c.waitForId(6)).toMatchObject({ ok: false, error: { code: "E_OVERLOADED" } });
  expect((await cluster.status()).requests.active).toBe(4);
  // One answers (cancelled): its bytes are released and the next request fits.
  c.send({ op: "cancel", id: 1 });
  expect(await c.waitForId(1)).toMatchObject({ ok: false, error: { code: "E_CANCELLED" } });
  await c.write(frame(7) + "\n");
  c.send({ op: "cancel", id: 7 });
  expect(await c.waitForId(7)).toMatchObject({ ok: false, error: { code: "E_CANCELLED" } });
  for (const id of [2, 3, 4]) c.send({ op: "cancel", id });
  for (const id of [2, 3, 4]) expect(await c.waitForId(id)).toMatchObject({ error: { code: "E_CANCELLED" } });
});
