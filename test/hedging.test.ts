/**
 * Hedged requests (issue 14). Which attempt of a request is slow is decided by files the
 * attempts claim (test/fixtures/hedge/lib/hedge-logic.js), not by timing; the tests wait
 * for replies and for files to appear, never sleep.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, watch } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type Cluster, createCluster } from "crew";
import { formatStatus } from "../dist/commands/status-format.js";

const HANDLERS = fileURLToPath(new URL("./fixtures/hedge", import.meta.url));
let cluster: Cluster;
let dir: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "crew-hedge-"));
});

afterEach(async () => {
  await cluster?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Resolves with the text of dir/name once it exists (fs.watch: no polling). */
function fileAppears(name: string, inDir = dir): Promise<string> {
  const path = join(inDir, name);
  return new Promise((resolve) => {
    const watcher = watch(inDir, () => check());
    const check = () => {
      if (!existsSync(path)) return;
      watcher.close();
      resolve(readFileSync(path, "utf8"));
    };
    check();
  });
}

async function warmUp(handler: string, n: number): Promise<void> {
  for (let i = 0; i < n; i++) expect(await cluster.call(handler, { mode: "quick" })).toMatchObject({ ok: true });
}

describe("hedged requests", () => {
  it("a hedge wins when the first attempt is slower than the handler's running p95; the first is aborted", async () => {
    cluster = await createCluster({ handlers: HANDLERS, threads: 2, logLevel: "silent" });
    // Enough run times for a p95. Some of these are slower than it and get hedged too:
    // that is the p95 rule at work, and it spends about as many tokens as these requests
    // earn. Each first attempt earns 0.05 of a token and each hedge spends one, from one
    // bucket for all handlers (hedger.ts); hedge-late's requests are never hedged, so
    // 24 of them earn the request below a whole token whatever the warm-up spent.
    await warmUp("hedge-p95", 100);
    const earnAToken = () => warmUp("hedge-late", 24);
    const hedgeNodes: string[] = [];
    cluster.observe({ hedgeStarted: (_job, node) => void hedgeNodes.push(node.id) });

    // The attempt whose handler starts first hangs. That is the first attempt, unless the
    // hedge's delay (the p95 of quick runs, well under a ms) was shorter than the first
    // attempt's way to its node, and the hedge's handler started first: then the first
    // attempt answers, which must count as no hedge win, and the case is tried again.
    let hedgeWon = false;
    for (let round = 1; round <= 5 && !hedgeWon; round++) {
      await earnAToken();
      const tryDir = join(dir, `try-${round}`);
      mkdirSync(tryDir);
      const before = (await cluster.status()).requests;
      const reply = await cluster.call("hedge-p95", { mode: "first-hangs", dir: tryDir });
      expect(reply).toMatchObject({ ok: true, result: { hedge: true }, meta: { attempts: 1 } }); // a hedge is not a retry
      const hung = await fileAppears("first-aborted", tryDir);
      expect(reply.meta.node).not.toBe(hung); // answered by the other attempt's node
      const after = (await cluster.status()).requests;
      expect(after.hedges - before.hedges).toBe(1);
      hedgeWon = reply.meta.node === hedgeNodes.at(-1);
      expect(after.hedgeWins - before.hedgeWins).toBe(hedgeWon ? 1 : 0);
      expect(after).toMatchObject({ completed: before.completed + 1, failed: 0 });
    }
    expect(hedgeWon).toBe(true);
    const after = (await cluster.status()).requests;
    expect(after.hedges).toBeLessThanOrEqual(1 + after.completed * 0.05); // the budget
    expect(formatStatus(await cluster.status())).toContain(`${after.hedges} hedges (${after.hedgeWins} won)`);
  });

  it("a hedge loses when the first attempt answers first; the hedge is aborted; metrics count both", async () => {
    cluster = await createCluster({ handlers: HANDLERS, threads: 2, logLevel: "silent" });
    const info = await cluster.listen({ port: 0, httpPort: 0 });
    const reply = await cluster.call("hedge-ms", { mode: "hedge-hangs", dir });
    expect(reply).toMatchObject({ ok: true, result: { first: true } });
    const hedgeNode = await fileAppears("hedge-aborted");
    expect(hedgeNode).not.toBe(reply.meta.node);
    expect((await cluster.status()).requests).toMatchObject({ hedges: 1, hedgeWins: 0 });
    const metrics = await (await fetch(`http://127.0.0.1:${info.httpPort}/metrics`)).text();
    expect(metrics).toContain('crew_hedges_total{handler="hedge-ms"} 1');
    expect(metrics).toContain('crew_hedge_wins_total{handler="hedge-ms"} 0');
  });

  it("never hedges a request twice, with budget and free nodes to spare; never hedges a handler that does not ask", async () => {
    cluster = await createCluster({ handlers: HANDLERS, threads: 3, logLevel: "silent" });
    // Earns 3 tokens, so the budget would allow more than one hedge. hedge-late's requests
    // are never hedged: warming up hedge-ms itself hedged every quick request that took
    // over 20 ms, and under load that spent all 4 tokens, so the hedge never came.
    await warmUp("hedge-late", 60);
    const before = (await cluster.status()).requests.hedges;
    const reply = await cluster.call("hedge-ms", { mode: "all-hang", dir }, { timeoutMs: 400 });
    expect(reply).toMatchObject({ ok: false, error: { code: "E_TIMEOUT" } });
    await Promise.all([fileAppears("aborted-1"), fileAppears("aborted-2")]);
    expect(existsSync(join(dir, "attempt-3"))).toBe(false);
    expect((await cluster.status()).requests.hedges - before).toBe(1);

    const plainDir = join(dir, "plain");
    mkdirSync(plainDir);
    const plain = await cluster.call("plain", { mode: "all-hang", dir: plainDir }, { timeoutMs: 200 });
    expect(plain).toMatchObject({ ok: false, error: { code: "E_TIMEOUT" } });
    expect(existsSync(join(plainDir, "attempt-2"))).toBe(false);
    expect((await cluster.status()).requests.hedges - before).toBe(1);
  });

  it("spends at most its budget when every request is slow: ~5% extra attempts", async () => {
    cluster = await createCluster({ handlers: HANDLERS, threads: 4, logLevel: "silent" });
    const total = 120;
    let sent = 0;
    const loop = async () => {
      while (sent < total) {
        sent++;
        expect(await cluster.call("hedge-ms", { mode: "slow", ms: 30 })).toMatchObject({ ok: true });
      }
    };
    await Promise.all([loop(), loop()]);
    const { hedges } = (await cluster.status()).requests;
    // One token to start with, 0.05 per request: 1 + 120 × 0.05 = 7 at most.
    expect(hedges).toBeGreaterThan(0);
    expect(hedges).toBeLessThanOrEqual(1 + total * 0.05);
  });
});
