/**
 * The dashboard of a cluster of several hosts (real `crew start --redis` processes on a
 * real redis-server, in headless Chromium): each host's page lists every host and its
 * nodes, and when the host running a job is SIGKILLed, the page of the host that takes
 * the job over shows the takeover in its timeline.
 */
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CrewHost } from "./helpers/crew-host.js";
import { NdjsonSocket } from "./helpers/ndjson-socket.js";
import { REDIS_SKIP, RedisServer } from "./helpers/redis-server.js";

const CHROMIUM = "/usr/bin/chromium";
const HAVE_CHROMIUM = existsSync(CHROMIUM);
if (!HAVE_CHROMIUM) console.warn(`dashboard hosts test skipped: no ${CHROMIUM} (install the Debian package chromium)`);

describe.skipIf(!HAVE_CHROMIUM || REDIS_SKIP !== null)("the dashboard of several hosts", () => {
  let server: RedisServer;
  let browser: Browser;
  const hosts: CrewHost[] = [];
  const shots = mkdtempSync(join(tmpdir(), "crew-dashboard-hosts-"));

  beforeAll(async () => {
    server = await RedisServer.start();
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    });
  });

  afterAll(async () => {
    await browser?.close();
    await Promise.all(hosts.map((h) => h.kill()));
    await server?.stop();
  });

  async function open(host: CrewHost): Promise<Page> {
    const page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
    await page.goto(`http://127.0.0.1:${host.httpPort}/`);
    return page;
  }

  it("lists every host and its nodes, and shows a takeover on the host that took the job", async () => {
    const cluster = `dash${process.pid}`;
    // A gateway with no nodes, and two hosts with one node each: the job runs on b or c.
    const a = await CrewHost.start("a", server.url, cluster, ["--threads", "0", "--processes", "0"]);
    const b = await CrewHost.start("b", server.url, cluster, ["--threads", "1", "--processes", "0"]);
    const c = await CrewHost.start("c", server.url, cluster, ["--threads", "1", "--processes", "0"]);
    hosts.push(a, b, c);
    const [pageA, pageB, pageC] = await Promise.all([a, b, c].map(open));
    for (const id of ["b", "c"]) {
      await pageA!.locator(`#nodes tr.host[data-host="${id}"]`).waitFor();
      await pageA!.locator(`#nodes tr[data-host="${id}"][data-node="t0"]`).waitFor();
    }
    expect(await pageA!.locator("#nodes tr.host").first().textContent()).toBe("host a (this host)");

    const socket = await NdjsonSocket.connect(a.port);
    try {
      const reply = socket.request({ id: "long", handler: "steps", payload: { steps: 60, ms: 50 } });
      // The running host lists the job among its requests in flight, with a checkpoint.
      const checkpointed = (page: Page) =>
        page.locator("#requests tbody tr[data-request] td:last-child", { hasText: /\d/ }).waitFor({ timeout: 60_000 }).then(() => page);
      const running = await Promise.race([checkpointed(pageB!), checkpointed(pageC!)]);
      const [victim, survivor, survivorPage] = running === pageB ? [b, c, pageC!] : [c, b, pageB!];
      await victim.kill();
      const takeover = survivorPage.locator('#timeline li[data-kind="takeover"]');
      await takeover.waitFor();
      expect(await takeover.textContent()).toContain(`host ${survivor.id} took over`);
      expect(await takeover.textContent()).toContain(`from ${victim.id}`);
      await survivorPage.screenshot({ path: join(shots, "dashboard-takeover.png"), fullPage: true });
      console.log(`dashboard screenshots: ${shots}`);
      const answer = await reply;
      expect(answer).toMatchObject({ ok: true, result: { done: 60, attempt: 2 }, meta: { host: survivor.id } });
    } finally {
      socket.socket.destroy();
    }
  });
});
