/**
 * An HTTP client that pipelines requests on one connection and hangs up: every one of
 * them is cancelled, not only the first (queued responses never see their own 'close').
 */
import { connect } from "node:net";
import { setImmediate as turn } from "node:timers/promises";
import { afterAll, beforeAll, expect, it } from "vitest";
import { type Cluster, createCluster } from "crew";

let cluster: Cluster;
let httpPort: number;
beforeAll(async () => {
  cluster = await createCluster({ handlers: "workers", threads: 1, logLevel: "silent" });
  ({ httpPort } = (await cluster.listen({ port: 0, httpPort: 0 })) as { httpPort: number });
});
afterAll(() => cluster?.close());

/** Polls once per event-loop turn: no event says an HTTP request reached the dispatcher. */
async function until(check: () => Promise<boolean>): Promise<void> {
  while (!(await check())) await turn();
}

it("cancels every pipelined request of a client that hangs up", async () => {
  const before = (await cluster.status()).requests;
  const socket = connect(httpPort, "127.0.0.1");
  socket.on("error", () => {});
  const body = JSON.stringify({ ms: 600_000 });
  const request = `POST /v1/run/sleep HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`;
  socket.write(request.repeat(5));
  await until(async () => (await cluster.status()).requests.accepted === before.accepted + 5);
  socket.destroy();
  await until(async () => (await cluster.status()).requests.active === 0);
  const after = (await cluster.status()).requests;
  expect(after.failed - before.failed).toBe(5);
  expect(after.completed).toBe(before.completed);
  expect(await cluster.run("echo", "still serving")).toBe("still serving");
});

it("refuses a pipelined HTTP request past maxConnectionInflight with 503 E_OVERLOADED", async () => {
  const cap = 3;
  const capped = await createCluster({ handlers: "workers", threads: 1, nodeConcurrency: 8, maxConnectionInflight: cap, logLevel: "silent" });
  try {
    const { httpPort: port } = (await capped.listen({ port: 0, httpPort: 0 })) as { httpPort: number };
    const socket = connect(port, "127.0.0.1");
    socket.on("error", () => {});
    let received = "";
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => (received += chunk));
    const body = JSON.stringify({ ms: 600_000 });
    const request = `POST /v1/run/sleep HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`;
    socket.write(request.repeat(cap + 2));
    await until(async () => (await capped.status()).requests.refused === 2);
    const status = await capped.status();
    expect(status.requests.accepted).toBe(cap);
    expect(status.requests.active).toBe(cap);
    // HTTP answers in request order: the refusals wait behind the three held requests, so
    // nothing is on the wire yet; the refusals are counted, not buffered without bound.
    expect(received).toBe("");
    socket.destroy();
    await until(async () => (await capped.status()).requests.active === 0);
  } finally {
    await capped.close();
  }
});
