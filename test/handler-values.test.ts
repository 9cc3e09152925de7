/**
 * What handlers give back, on both kinds of node: values JSON would change are refused
 * with a message naming the type and the path (result and checkpoint), results have a
 * size limit, thrown errors reach the client with their name, code, details and an HTTP
 * status of their choosing, and checkpoints saved without awaiting are harmless and bounded.
 */
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Cluster, createCluster, HandlerError } from "crew";
import { LogCapture } from "./helpers/cluster.js";

const HANDLERS = fileURLToPath(new URL("./fixtures/nodes/values", import.meta.url));

describe.each([
  { kind: "thread", options: { threads: 1 }, node: "t0" },
  { kind: "process", options: { processes: 1 }, node: "p0" },
] as const)("handler values on a $kind node", ({ options, node }) => {
  let cluster: Cluster;
  let httpPort: number;
  const logs = new LogCapture();
  beforeAll(async () => {
    cluster = await createCluster({ handlers: HANDLERS, ...options, maxResultBytes: 1000, logger: logs.logger });
    httpPort = (await cluster.listen({ port: 0, httpPort: 0 })).httpPort!;
  });
  afterAll(() => cluster?.close());

  it.each([
    ["map", "result must be JSON: result.items[2] is a Map: JSON would turn it into {}"],
    ["set", "result must be JSON: result is a Set: JSON would turn it into {}"],
    ["error", "result must be JSON: result.failure is an Error (Error): JSON would turn it into {}"],
    ["nan", "result must be JSON: result.ratio is NaN: JSON would turn it into null"],
    ["undefined-in-array", "result must be JSON: result[1] is undefined: JSON would turn it into null"],
  ])("refuses a %s result with E_HANDLER naming it", async (shape, message) => {
    const reply = await cluster.call("shapes", { shape });
    expect(reply).toMatchObject({ ok: false, error: { code: "E_HANDLER", message: expect.stringContaining(message) } });
  });

  it.each([
    ["undefined-property", { a: 1 }],
    ["date", { at: "1970-01-01T00:00:00.000Z" }],
    ["nothing", null],
  ])("takes a %s result as JSON encodes it", async (shape, result) => {
    expect(await cluster.call("shapes", { shape })).toMatchObject({ ok: true, result });
  });

  it("refuses a Map checkpoint with a TypeError naming it, and the attempt carries on", async () => {
    const reply = await cluster.call("shapes", { shape: "map", as: "checkpoint" });
    expect(reply).toMatchObject({
      ok: true,
      result: { name: "TypeError", message: expect.stringContaining("checkpoint state must be JSON: state.items[2] is a Map") },
    });
  });

  it("refuses a result over maxResultBytes with E_HANDLER naming the option", async () => {
    const reply = await cluster.call("shapes", { shape: "big", bytes: 2000 });
    expect(reply).toMatchObject({ ok: false, error: { code: "E_HANDLER", message: expect.stringMatching(/result of 2002 bytes is over the limit of 1000 bytes \(maxResultBytes, --max-result-bytes\)/) } });
    expect(await cluster.call("shapes", { shape: "big", bytes: 900 })).toMatchObject({ ok: true });
  });

  it("forwards a thrown error's name, code, details and status, and logs it with its stack", async () => {
    const from = logs.lines.length;
    const fields = { code: "SKU_UNKNOWN", details: { sku: "A-1", tried: [1, 2] }, status: 422 };
    const err = await cluster.run("throws", { name: "ValidationError", fields }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HandlerError);
    expect(err).toMatchObject({ code: "E_HANDLER", message: "no such sku", cause: { name: "ValidationError", ...fields } });
    const line = await logs.waitFor("handler threw", { node, handler: "throws" }, from);
    expect(line).toMatchObject({ level: 40, requestId: expect.any(String), attempt: 1, err: { type: "Error", message: "no such sku", stack: expect.stringContaining("throws.js") } });

    const res = await fetch(`http://127.0.0.1:${httpPort}/v1/run/throws`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name: "ValidationError", fields }),
    });
    expect(res.status).toBe(422);
    expect(await res.json()).toMatchObject({ error: { code: "E_HANDLER", message: "no such sku", cause: { name: "ValidationError", ...fields } } });
  });

  it("keeps HTTP 500 for a status outside 400–499, and drops details JSON would change", async () => {
    const res = await fetch(`http://127.0.0.1:${httpPort}/v1/run/throws`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ fields: { status: 302, code: 7 } }),
    });
    expect(res.status).toBe(500);
    const body = (await res.json()) as { error: { cause: Record<string, unknown> } };
    expect(body.error.cause).toEqual({ name: "Error" });
  });

  it("sends at most one unawaited checkpoint at a time, and stores the last", async () => {
    const before = (await cluster.status()).requests.checkpoints;
    const reply = await cluster.call("unawaited", { mode: "many", count: 200, pad: 10_000 });
    expect(reply).toMatchObject({ ok: true });
    // The first goes out; the other 198 unawaited ones fold into one; then the awaited last.
    expect((await cluster.status()).requests.checkpoints - before).toBeLessThanOrEqual(3);
  });

  it("survives unawaited checkpoints refused for size or after the deadline", async () => {
    expect(await cluster.call("unawaited", { mode: "too-large", bytes: 2 * 1024 * 1024 })).toMatchObject({ ok: true, result: "still alive" });
    const late = await cluster.call("unawaited", { mode: "after-deadline" }, { timeoutMs: 100 });
    expect(late).toMatchObject({ ok: false, error: { code: "E_TIMEOUT" } });
    expect(await cluster.call("echo", "next")).toMatchObject({ ok: true, result: "next", meta: { node } });
    const [status] = (await cluster.status()).nodes;
    expect(status).toMatchObject({ crashes: 0, restarts: 0 });
  });
});
