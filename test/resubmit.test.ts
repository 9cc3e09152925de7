/**
 * `new Client({ resubmit: true })` against primaries in child processes killed with
 * kill -9: calls in flight, and calls made while the primary is down, complete once it
 * is back on the same journal (the held job resuming from its checkpoint); with
 * `hosts`, calls fail over to another primary.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Client } from "crew";
import { Gate } from "./helpers/cluster.js";
import { PrimaryProcess } from "./helpers/primary-process.js";
import { freePort, freePorts } from "./helpers/redis-server.js";

const HANDLERS = fileURLToPath(new URL("./fixtures/journal", import.meta.url));

let dir: string;
let gate: Gate;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "crew-resubmit-"));
  gate = await Gate.open();
});

afterAll(async () => {
  await gate.close();
  rmSync(dir, { recursive: true, force: true });
});

async function args(journal?: string): Promise<{ port: number; argv: string[] }> {
  const [port, httpPort] = (await freePorts(2)) as [number, number];
  const argv = ["--handlers", HANDLERS, "--threads", "1", "--processes", "0", "--port", String(port), "--http-port", String(httpPort)];
  return { port, argv: journal ? [...argv, "--journal", journal] : argv };
}

describe("Client({ resubmit: true })", () => {
  it("completes its calls across a kill -9 and restart of the primary, resuming checkpointed work", async () => {
    const { port, argv } = await args(join(dir, "restart.db"));
    let primary = await PrimaryProcess.start(argv);
    const client = new Client({ port, resubmit: true });
    try {
      expect(await client.run("nap", { ms: 0 })).toMatchObject({ attempt: 1 });
      const held = client.run("ledger", { n: 5, hold: { port: gate.port, at: 2 } });
      const quick = Array.from({ length: 20 }, (_, i) => client.call("nap", { ms: i % 3 }));
      await gate.arrival();
      await primary.kill9();
      const duringDowntime = client.call("nap", { ms: 0 });
      primary = await PrimaryProcess.start(argv);
      expect(await held).toEqual({ i: 5, resumedFrom: 2, attempt: 2 });
      for (const r of await Promise.all(quick)) expect(r.ok).toBe(true);
      expect((await duringDowntime).ok).toBe(true);
    } finally {
      await client.close();
      await primary.stop();
    }
  });

  it("fails over to the next of its hosts", async () => {
    const a = await args();
    const b = await args();
    const [first, second] = [await PrimaryProcess.start(a.argv), await PrimaryProcess.start(b.argv)];
    const client = new Client({ hosts: [`127.0.0.1:${a.port}`, { host: "127.0.0.1", port: b.port }], resubmit: true });
    try {
      const call = client.run("ledger", { n: 2, hold: { port: gate.port, at: 1 } }, { idempotencyKey: "moves" });
      await gate.arrival();
      await first.kill9();
      // B has no journal of A's: it runs the call from the start, and holds at the gate too.
      const onB = await gate.arrival();
      onB.open();
      expect(await call).toEqual({ i: 2, resumedFrom: null, attempt: 1 });
    } finally {
      await client.close();
      await second.stop();
    }
  });

  it("gives up on a call once its deadline has passed while no primary answers", async () => {
    const client = new Client({ port: await freePort(), resubmit: true });
    await expect(client.run("nap", { ms: 0 }, { timeoutMs: 300 })).rejects.toMatchObject({ code: "E_CONNECTION", message: expect.stringMatching(/deadline passed/) });
    await client.close();
  });
});
