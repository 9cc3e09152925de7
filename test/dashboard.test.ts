/**
 * The dashboard in a real browser: headless Chromium from Debian (/usr/bin/chromium),
 * driven by playwright-core, against a real cluster. The page loads, shows the nodes and
 * the requests in flight, puts a kill in its timeline within 2 s of the kill, its charts
 * fill under load, its kill button works, and it is readable in dark mode.
 */
import { existsSync, mkdtempSync } from "node:fs";
import { networkInterfaces, tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCluster, type Cluster } from "crew";

const CHROMIUM = "/usr/bin/chromium";
const HAVE_CHROMIUM = existsSync(CHROMIUM);
if (!HAVE_CHROMIUM) console.warn(`dashboard browser test skipped: no ${CHROMIUM} (install the Debian package chromium)`);

let cluster: Cluster;
let base: string;
let browser: Browser;
let page: Page;
const shots = mkdtempSync(join(tmpdir(), "crew-dashboard-"));
const errors: string[] = [];

describe.skipIf(!HAVE_CHROMIUM)("the dashboard in Chromium", () => {
  beforeAll(async () => {
    cluster = await createCluster({ handlers: "workers", threads: 2, processes: 1, logLevel: "silent", drainTimeoutMs: 1000 });
    base = `http://127.0.0.1:${(await cluster.listen({ port: 0, httpPort: 0 })).httpPort}`;
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    });
    page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
    page.on("pageerror", (err) => errors.push(err.message));
    page.on("console", (msg) => void (msg.type() === "error" && errors.push(msg.text())));
    // Nothing from the internet: every request the page makes goes to the cluster.
    page.on("request", (req) => void (req.url().startsWith(base) || req.url().startsWith("data:") || errors.push(`fetched ${req.url()}`)));
    await page.goto(`${base}/`);
  });

  afterAll(async () => {
    await browser?.close();
    await cluster?.close();
  });

  it("shows every node with its kind, state and pid, live", async () => {
    for (const id of ["t0", "t1", "p0"]) await page.locator(`#nodes tr[data-node="${id}"]`).waitFor();
    const p0 = page.locator('#nodes tr[data-node="p0"] td');
    expect(await p0.nth(1).textContent()).toBe("process");
    expect(Number(await p0.nth(2).textContent())).toBeGreaterThan(0);
    await page.locator('#nodes tr[data-node="t0"] .state-up').waitFor();
    await page.locator('#conn[data-state="live"]').waitFor();
  });

  it("fills its charts under a short load", async () => {
    let loading = true;
    const load = (async () => {
      while (loading) await Promise.all(Array.from({ length: 16 }, (_, i) => cluster.run("sleep", { ms: 1 + (i % 4) })));
    })();
    try {
      await page.waitForFunction(() => {
        const d = (globalThis as any).crewDashboard.data;
        return d.ok.some((v: number) => v > 0) && d.p99.some((v: number | null) => v !== null && v > 0);
      });
    } finally {
      loading = false;
      await load;
    }
    const drawn = await page.evaluate(() => {
      const { data, charts } = (globalThis as any).crewDashboard;
      return { points: data.t.length, plotted: charts.throughput.chart.data[1].filter((v: number) => v > 0).length };
    });
    expect(drawn.points).toBeGreaterThan(0);
    expect(drawn.plotted).toBeGreaterThan(0);
    expect(await page.locator("#summary").textContent()).toContain("completed");
  });

  it("lists a request in flight with its node, attempt and age", async () => {
    const held = new AbortController();
    let started: (id: string) => void;
    const id = new Promise<string>((resolve) => (started = resolve));
    cluster.observe({ attemptStarted: (job) => void ((job.payload as any)?.ms === 60_000 && started(job.requestId)) });
    const call = cluster.call("sleep", { ms: 60_000 }, { signal: held.signal });
    const row = page.locator(`#requests tbody tr[data-request="${await id}"]`);
    await row.waitFor();
    const cells = await row.locator("td").allTextContents();
    expect(cells[1]).toBe("sleep");
    expect(["t0", "t1", "p0"]).toContain(cells[3]);
    expect(cells[4]).toBe("1");
    expect(cells[6]).toMatch(/\d+ ms|\d+\.\d s/);
    held.abort();
    await call;
  });

  it("shows a kill in the timeline within 2 s of POST /v1/nodes/:id/kill", async () => {
    const res = await fetch(`${base}/v1/nodes/t1/kill`, { method: "POST" });
    expect(res.status).toBe(202);
    await page.locator('#timeline li[data-kind="kill"][data-node="t1"]').waitFor({ timeout: 2000 });
    await page.locator('#timeline li[data-kind="restart"][data-node="t1"]').waitFor();
    expect(await page.locator('#timeline li[data-kind="crash"][data-node="t1"]').count()).toBe(1);
  });

  it("kills a node from its button, after asking", async () => {
    await page.locator('#nodes tr[data-node="p0"] .state-up').waitFor();
    const asked = new Promise<string>((resolve) =>
      page.once("dialog", (dialog) => {
        resolve(dialog.message());
        void dialog.accept();
      }),
    );
    await page.locator('button[data-kill="p0"]').click();
    expect(await asked).toContain("Kill node p0?");
    await page.locator('#timeline li[data-kind="kill"][data-node="p0"]').waitFor();
    await page.locator('#timeline li[data-kind="restart"][data-node="p0"]').waitFor();
  });

  it("reloads the handlers from its button, and the timeline shows the reload and the nodes replaced", async () => {
    await page.locator("#reload").click();
    const reload = page.locator('#timeline li[data-kind="reload"]');
    await reload.waitFor();
    expect(await reload.textContent()).toMatch(/handlers reloaded \(http\) in \d+ ms: no handler changed; t0→/);
    await page.locator('#timeline li[data-kind="node-added"]').first().waitFor();
    await page.locator('#timeline li[data-kind="node-removed"][data-node="t0"]').waitFor();
    await page.locator("#notice", { hasText: "Handlers reloaded." }).waitFor();
  });

  it("is readable in dark mode and in light mode", async () => {
    const shades: Record<string, { background: number; text: number }> = {};
    for (const scheme of ["dark", "light"] as const) {
      await page.emulateMedia({ colorScheme: scheme });
      await page.screenshot({ path: join(shots, `dashboard-${scheme}.png`), fullPage: true });
      shades[scheme] = await page.evaluate(() => {
        const luminance = (css: string) => {
          const [r, g, b] = css.match(/\d+/g)!.map(Number);
          return (0.2126 * r! + 0.7152 * g! + 0.0722 * b!) / 255;
        };
        const dom = globalThis as any;
        const style = dom.getComputedStyle(dom.document.querySelector(".panel"));
        return { background: luminance(style.backgroundColor), text: luminance(style.color) };
      });
    }
    expect(shades.dark!.background).toBeLessThan(0.25);
    expect(shades.dark!.text - shades.dark!.background).toBeGreaterThan(0.5);
    expect(shades.light!.background).toBeGreaterThan(0.75);
    expect(shades.light!.background - shades.light!.text).toBeGreaterThan(0.5);
    console.log(`dashboard screenshots: ${shots}`);
    expect(errors).toEqual([]);
  });
});

/** This machine's first non-loopback IPv4 address: a peer there is not loopback to the admin rules. */
const EXTERNAL = Object.values(networkInterfaces())
  .flat()
  .find((a) => a && a.family === "IPv4" && !a.internal)?.address;
if (HAVE_CHROMIUM && !EXTERNAL) console.warn("dashboard admin-token test skipped: this machine has no non-loopback IPv4 address");

describe.skipIf(!HAVE_CHROMIUM || !EXTERNAL)("the dashboard's admin buttons off loopback", () => {
  it("are refused without the admin token, ask for it, and work with it", async () => {
    const remote = await createCluster({ handlers: "workers", threads: 2, logLevel: "silent", drainTimeoutMs: 1000 });
    const chrome = await chromium.launch({
      executablePath: CHROMIUM,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    });
    try {
      const { httpPort } = await remote.listen({ host: EXTERNAL, port: 0, httpPort: 0, adminToken: "s3cret" });
      const tab = await chrome.newPage();
      const answers = ["wrong", "s3cret"];
      const asked: string[] = [];
      tab.on("dialog", (dialog) => {
        asked.push(dialog.type());
        void (dialog.type() === "prompt" ? dialog.accept(answers.shift()) : dialog.accept());
      });
      await tab.goto(`http://${EXTERNAL}:${httpPort}/`);
      await tab.locator('#nodes tr[data-node="t0"] .state-up').waitFor();
      // A wrong token: refused, and said so.
      await tab.locator('button[data-kill="t0"]').click();
      await tab.locator("#notice", { hasText: "E_FORBIDDEN" }).waitFor();
      expect(remote.nodes.find((n) => n.id === "t0")!.crashes).toBe(0);
      // The stored token is refused: the page asks again, and the right one kills the node.
      await tab.locator('button[data-kill="t0"]').click();
      await tab.locator('#timeline li[data-kind="kill"][data-node="t0"]').waitFor();
      expect(asked).toEqual(["confirm", "prompt", "confirm", "prompt"]);
    } finally {
      await chrome.close();
      await remote.close();
    }
  });
});
