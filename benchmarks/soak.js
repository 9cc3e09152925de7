// The soak: each hostile memory shape from issue 9, sent to a real `crew start` until the
// primary refuses, asserting it lives (a ping answers, the process has not exited) with
// bounded RSS. Run with `npm run soak` (it builds first); it prints a table, writes
// benchmarks/results/soak.json, and exits 1 when a shape kills the primary or passes its
// RSS bound. Not part of the timed unit suite: it takes a minute or two.
//
// RSS is read from /proc/<pid>/status (VmRSS) every 50 ms; "peak" is the highest sample
// while a shape ran, "base" the primary's RSS before it began.
import { spawn } from "node:child_process";
import { once } from "node:events";
import { readFileSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const HANDLERS = fileURLToPath(new URL("./soak-handlers", import.meta.url));
const MiB = 1024 * 1024;

/** A primary in its own process, on free ports, with its RSS sampled. */
async function startPrimary(flags, nodeFlags = []) {
  const child = spawn(process.execPath, [...nodeFlags, "bin/crew.js", "start", "--handlers", HANDLERS, "--threads", "1", "--port", "0", "--http-port", "0", "--log-level", "info", ...flags], {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "inherit"],
  });
  let exited = null;
  child.once("exit", (code, signal) => (exited = { code, signal }));
  let text = "";
  const { port, httpPort } = await new Promise((resolve, reject) => {
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (chunk) => {
      text += chunk;
      const line = text.split("\n").find((l) => l.includes('"listening"'));
      if (line) resolve(JSON.parse(line));
    });
    child.once("exit", () => reject(new Error(`the primary exited before listening:\n${text.slice(-2000)}`)));
  });
  child.stdout.resume();
  let peak = 0;
  const rss = () => {
    try {
      return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, "utf8"))[1]) * 1024;
    } catch {
      return 0;
    }
  };
  const timer = setInterval(() => (peak = Math.max(peak, rss())), 50);
  return {
    port,
    httpPort,
    rss,
    get exited() {
      return exited;
    },
    resetPeak() {
      peak = rss();
    },
    get peak() {
      return Math.max(peak, rss());
    },
    async stop() {
      clearInterval(timer);
      if (exited) return;
      child.kill("SIGTERM");
      await once(child, "exit");
    },
  };
}

/** A raw NDJSON connection: send lines, collect replies, know when it closed. */
function client(port) {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: "127.0.0.1", noDelay: true });
    const replies = [];
    const waiters = new Set();
    const c = {
      socket,
      replies,
      closed: false,
      send: (lines) => socket.write(lines.map((l) => (typeof l === "string" ? l : JSON.stringify(l)) + "\n").join("")),
      /** Sends and waits until the socket takes more (TCP backpressure), or it closes. */
      async push(lines) {
        if (c.send(lines) || c.closed) return;
        await new Promise((r) => {
          const done = () => {
            socket.off("drain", done);
            socket.off("close", done);
            r();
          };
          socket.on("drain", done);
          socket.on("close", done);
        });
      },
      until(pred) {
        return new Promise((res, rej) => {
          const check = () => {
            if (pred()) {
              waiters.delete(check);
              res();
            } else if (c.closed) {
              waiters.delete(check);
              rej(new Error(`connection closed (${replies.length} replies, last ${JSON.stringify(replies.at(-1))})`));
            }
          };
          waiters.add(check);
          check();
        });
      },
      close: () => socket.destroy(),
    };
    socket.setEncoding("utf8");
    let parts = [];
    socket.on("data", (chunk) => {
      if (!chunk.includes("\n")) return void parts.push(chunk); // an 8 MiB reply comes in many chunks
      const lines = (parts.join("") + chunk).split("\n");
      parts = [lines.pop()];
      for (const line of lines) replies.push(JSON.parse(line));
      for (const w of [...waiters]) w();
    });
    socket.on("error", () => {});
    socket.on("close", () => {
      c.closed = true;
      for (const w of [...waiters]) w();
    });
    socket.once("connect", () => resolve(c));
    socket.once("error", reject);
  });
}

/** The primary answers a ping on a fresh connection. */
async function alive(primary) {
  if (primary.exited) return false;
  const c = await client(primary.port);
  c.send([{ op: "ping", id: "alive" }]);
  await c.until(() => c.replies.some((r) => r.id === "alive"));
  c.close();
  return true;
}

const refusedBy = (replies) => [...new Set(replies.filter((r) => !r.ok).map((r) => r.error.code))].join(", ") || "none";

const shapes = [
  {
    name: "1 MiB frames of [{},{},…] (parsed: ~20 MiB each), parked",
    flags: [],
    boundMiB: 600,
    async run(primary) {
      const c = await client(primary.port);
      const frame = (i) => `{"id":${i},"handler":"park","payload":[${"{},".repeat(Math.floor((MiB - 64) / 3) - 1)}{}]}`;
      for (let i = 0; !c.replies.some((r) => !r.ok); i++) {
        await c.push([frame(i)]);
        if (i > 2000) throw new Error("never refused");
      }
      await c.until(() => c.replies.some((r) => !r.ok));
      const refused = refusedBy(c.replies);
      c.close();
      return { refused, bound: "--max-pending-bytes (256 MiB of frame text)" };
    },
  },
  {
    name: "5 clients pipelining 40 × 8 MiB results, never reading",
    flags: [],
    boundMiB: 600,
    async run(primary) {
      const clients = await Promise.all([0, 1, 2, 3, 4].map(() => client(primary.port)));
      for (const c of clients) {
        c.socket.pause();
        c.send(Array.from({ length: 40 }, (_, i) => ({ id: i, handler: "big", payload: { bytes: 8 * MiB }, timeoutMs: 600_000 })));
      }
      // Long enough for every unheld request to have run: the held ones do not.
      await new Promise((r) => setTimeout(r, 8000));
      const peakWhileHeld = primary.peak;
      for (const c of clients) c.socket.resume();
      await Promise.all(clients.map((c) => c.until(() => c.replies.length >= 40)));
      const ok = clients.every((c) => c.replies.every((r) => r.ok));
      for (const c of clients) c.close();
      if (!ok) throw new Error(`a reply failed: ${refusedBy(clients.flatMap((c) => c.replies))}`);
      return { refused: "none (held, then all 200 answered)", bound: "--max-unsent-reply-bytes (8 MiB per connection)", peakMiB: peakWhileHeld / MiB };
    },
  },
  {
    name: "20 connections sending an unfinished line one byte at a time (20 × 48 KiB)",
    flags: [],
    boundMiB: 200,
    async run(primary) {
      const clients = await Promise.all(Array.from({ length: 20 }, () => client(primary.port)));
      const one = Buffer.from("x");
      const before = primary.rss();
      for (let i = 0; i < 48 * 1024; i++) {
        for (const c of clients) c.socket.write(one);
        if (i % 64 === 63) await new Promise((r) => setTimeout(r, 0));
      }
      await new Promise((r) => setTimeout(r, 500));
      const grown = primary.rss() - before;
      for (const c of clients) c.close();
      return { refused: "none (under --max-frame-bytes)", bound: "--max-frame-bytes per line, held in one buffer", note: `RSS +${(grown / MiB).toFixed(1)} MiB for 0.94 MiB pending (${(grown / (20 * 48 * 1024)).toFixed(1)} bytes per pending byte)` };
    },
  },
  {
    name: "20 HTTP connections sending a chunked body in 1-byte chunks (20 × 256 KiB)",
    flags: [],
    boundMiB: 250,
    async run(primary) {
      const sockets = await Promise.all(
        Array.from({ length: 20 }, () => new Promise((resolve) => {
          const socket = connect({ port: primary.httpPort, host: "127.0.0.1" }, () => resolve(socket));
          socket.on("error", () => {});
        })),
      );
      const head = "POST /v1/run/echo HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n1\r\n\"\r\n";
      const ones = Buffer.from("1\r\nx\r\n".repeat(64 * 1024));
      for (const socket of sockets) socket.write(head);
      for (let round = 0; round < 4; round++) {
        await Promise.all(sockets.map((socket) => new Promise((resolve) => (socket.write(ones) ? resolve() : socket.once("drain", resolve)))));
      }
      const answers = await Promise.all(
        sockets.map((socket) => new Promise((resolve) => {
          let text = "";
          socket.setEncoding("utf8");
          socket.on("data", (c) => (text += c));
          socket.once("close", () => resolve([...text.matchAll(/HTTP\/1\.1 (\d+)/g)].map((m) => m[1]).find((code) => code !== "102") ?? text.slice(0, 80)));
          socket.end("1\r\n\"\r\n0\r\n\r\n");
        })),
      );
      // 408: the 30 s request timeout passed first (a loaded machine parses 1-byte chunks slowly): a bound too.
      const ok = answers.filter((a) => a === "200").length;
      const timedOut = answers.filter((a) => a === "408").length;
      if (ok + timedOut !== 20) throw new Error(`${ok} of 20 bodies answered 200, ${timedOut} 408: ${answers.find((a) => a !== "200" && a !== "408")}`);
      return { refused: timedOut > 0 ? `${timedOut} × 408 (request timeout)` : "none (under --max-frame-bytes)", bound: "--max-frame-bytes per body, in one buffer", note: `${ok} of 20 answered 200` };
    },
  },
  {
    name: "1,000 idle connections (cap 1,000), then a normal client, then one more",
    flags: ["--max-connections", "1001", "--idle-connection-ms", "60000"],
    boundMiB: 300,
    async run(primary) {
      const idle = [];
      for (let i = 0; i < 1000; i++) idle.push(await client(primary.port));
      const normal = await client(primary.port);
      normal.send(Array.from({ length: 40 }, (_, i) => ({ id: i, handler: "echo", payload: i })));
      await normal.until(() => normal.replies.length >= 40);
      const served = normal.replies.filter((r) => r.ok).length;
      const extra = await client(primary.port);
      await extra.until(() => extra.replies.length > 0);
      for (const c of [...idle, normal, extra]) c.close();
      if (served !== 40) throw new Error(`the normal client got ${served} of 40`);
      return { refused: refusedBy(extra.replies) + " (the 1,002nd connection)", bound: "--max-connections, --idle-connection-ms", note: "normal client: 40 of 40" };
    },
  },
  {
    name: "20 greedy connections × 1,024 pipelined, then a normal client",
    flags: ["--max-queue", "10000"],
    boundMiB: 400,
    async run(primary) {
      const greedy = await Promise.all(Array.from({ length: 20 }, () => client(primary.port)));
      for (const [n, g] of greedy.entries()) g.send(Array.from({ length: 1024 }, (_, i) => ({ id: `${n}-${i}`, handler: "sleep", payload: { ms: 60000 } })));
      await Promise.all(greedy.map((g) => g.until(() => g.replies.length > 0)));
      const normal = await client(primary.port);
      normal.send(Array.from({ length: 40 }, (_, i) => ({ id: i, handler: "echo", payload: i, timeoutMs: 600000 })));
      // The one node is busy with a long sleep: the normal requests are queued, not refused.
      await new Promise((r) => setTimeout(r, 1000));
      const refusedNormal = normal.replies.filter((r) => !r.ok).length;
      for (const g of greedy) g.close(); // cancels their sleeps; the normal requests then run
      await normal.until(() => normal.replies.length >= 40);
      const served = normal.replies.filter((r) => r.ok).length;
      normal.close();
      if (refusedNormal > 0 || served !== 40) throw new Error(`the normal client got ${served} of 40 (${refusedNormal} refused)`);
      return { refused: refusedBy(greedy.flatMap((g) => g.replies)) + " (greedy ones)", bound: "fair share of --max-queue", note: "normal client: 40 of 40 queued and served" };
    },
  },
  {
    name: "heap guard: 1 MiB frames with a 4 GiB pending budget, primary heap capped at 256 MiB",
    flags: ["--max-pending-bytes", String(4 * 1024 * MiB)],
    nodeFlags: ["--max-old-space-size=256"],
    boundMiB: 600,
    async run(primary) {
      const c = await client(primary.port);
      const frame = (i) => `{"id":${i},"handler":"park","payload":"${"x".repeat(MiB - 64)}"}`;
      for (let i = 0; !c.replies.some((r) => !r.ok); i++) {
        await c.push([frame(i)]);
        if (i > 4000) throw new Error("never refused");
      }
      const refusal = c.replies.find((r) => !r.ok);
      c.close();
      return { refused: `${refusal.error.code}: ${refusal.error.message}`, bound: "heap guard (80% of V8's heap limit)" };
    },
  },
];

const results = [];
let failed = false;
// `npm run soak -- WORD` runs only the shapes whose name contains WORD.
const only = process.argv[2];
for (const shape of shapes.filter((s) => !only || s.name.includes(only))) {
  const primary = await startPrimary(shape.flags, shape.nodeFlags);
  const base = primary.rss();
  primary.resetPeak();
  let result;
  try {
    result = await shape.run(primary);
    const lives = await alive(primary);
    const peakMiB = result.peakMiB ?? primary.peak / MiB;
    const ok = lives && peakMiB <= shape.boundMiB;
    failed ||= !ok;
    results.push({ shape: shape.name, ok, lives, baseMiB: +(base / MiB).toFixed(0), peakMiB: +peakMiB.toFixed(0), boundMiB: shape.boundMiB, ...result, peakMiB: +peakMiB.toFixed(0) });
  } catch (err) {
    failed = true;
    results.push({ shape: shape.name, ok: false, lives: !primary.exited, error: err.message, exited: primary.exited });
  }
  console.log(JSON.stringify(results.at(-1)));
  await primary.stop();
}

console.log("\n| shape | refused with | bound | primary RSS before → peak |\n| --- | --- | --- | --- |");
for (const r of results) console.log(`| ${r.shape} | ${r.refused ?? r.error} | ${r.bound ?? ""} | ${r.baseMiB ?? "?"} → ${r.peakMiB ?? "?"} MiB${r.note ? ` (${r.note})` : ""} |`);
// A partial run (`npm run soak -- WORD`) replaces only its shapes' entries in the file.
const file = new URL("./results/soak.json", import.meta.url);
let all = results;
if (only) {
  try {
    const kept = JSON.parse(readFileSync(file, "utf8")).results.filter((r) => !results.some((n) => n.shape === r.shape) && shapes.some((s) => s.name === r.shape));
    all = [...kept, ...results];
  } catch {}
}
writeFileSync(file, JSON.stringify({ node: process.version, date: new Date().toISOString(), results: all }, null, 2) + "\n");
process.exit(failed ? 1 : 0);
