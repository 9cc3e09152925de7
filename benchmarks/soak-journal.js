// Soak: a primary on a journal killed with kill -9 every few seconds under load, and
// started again at once on the same file and port, while resubmitting clients
// (Client({ resubmit: true })) keep calling it. Every call must be answered exactly once,
// correctly: echoes return their own payload, checkpointed jobs their full count.
//   npm run build && node benchmarks/soak-journal.js [--seconds 30] [--kill-every-ms 3000] [--clients 4]
// Not part of the unit suite: it runs for as long as it is asked to.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { Client } from "../dist/index.js";
import { freePort } from "./lib/free-port.js";

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "30" },
    "kill-every-ms": { type: "string", default: "3000" },
    clients: { type: "string", default: "4" },
    pipeline: { type: "string", default: "16" },
  },
});
const seconds = Number(values.seconds);
const killEveryMs = Number(values["kill-every-ms"]);
const CREW = fileURLToPath(new URL("../bin/crew.js", import.meta.url));
const HANDLERS = fileURLToPath(new URL("./handlers/", import.meta.url));


const dir = mkdtempSync(join(tmpdir(), "crew-soak-"));
const [port, httpPort] = [await freePort(), await freePort()];
const args = ["start", "--handlers", HANDLERS, "--threads", "2", "--processes", "0", "--port", String(port), "--http-port", String(httpPort), "--journal", join(dir, "soak.db"), "--log-level", "warn"];

/** Starts a primary; resolves once it accepts connections. */
function startPrimary() {
  const child = spawn(process.execPath, [CREW, ...args], { stdio: ["ignore", "ignore", "inherit"] });
  return new Promise((resolve, reject) => {
    const probe = async () => {
      const c = new Client({ port });
      try {
        await c.ping();
        resolve(child);
      } catch {
        if (child.exitCode !== null) return reject(new Error(`primary exited ${child.exitCode}`));
        setTimeout(probe, 20);
      } finally {
        await c.close();
      }
    };
    probe();
  });
}

const stats = { calls: 0, ok: 0, wrong: 0, failed: 0, kills: 0, codes: {} };
let primary = await startPrimary();
const endAt = performance.now() + seconds * 1000;

const killer = (async () => {
  while (performance.now() + killEveryMs < endAt) {
    await new Promise((r) => setTimeout(r, killEveryMs));
    primary.kill("SIGKILL");
    await new Promise((r) => primary.once("exit", r));
    stats.kills++;
    primary = await startPrimary();
  }
})();

async function slot(client, c, s) {
  for (let i = 0; performance.now() < endAt; i++) {
    stats.calls++;
    const job = i % 10 === 9;
    const payload = job ? { units: 200, every: 5 } : { c, s, i };
    // A call's promise settles once: what is checked is that it settles, and with the right answer.
    const reply = await client.call(job ? "slices" : "echo", payload, { timeoutMs: 60_000 }).catch((err) => ({ ok: false, error: { code: err.code ?? "THROWN" } }));
    if (!reply.ok) {
      stats.failed++;
      stats.codes[reply.error.code] = (stats.codes[reply.error.code] ?? 0) + 1;
    } else if (job ? reply.result.checkpoints === undefined : JSON.stringify(reply.result) !== JSON.stringify(payload)) {
      stats.wrong++;
    } else stats.ok++;
  }
}

const clients = Array.from({ length: Number(values.clients) }, () => new Client({ port, resubmit: true }));
await Promise.all(clients.flatMap((client, c) => Array.from({ length: Number(values.pipeline) }, (_, s) => slot(client, c, s))));
await killer;
await Promise.all(clients.map((c) => c.close()));
primary.kill("SIGTERM");
rmSync(dir, { recursive: true, force: true });
console.log(JSON.stringify({ seconds, killEveryMs, ...stats }));
const good = stats.wrong === 0 && stats.failed === 0 && stats.ok === stats.calls;
console.log(good ? "soak: every call answered once, correctly" : "soak: FAILED");
process.exit(good ? 0 : 1);
