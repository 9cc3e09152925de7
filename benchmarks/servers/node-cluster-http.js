// The HTTP baseline of scenario 3: node:cluster with --workers processes sharing one
// port, each answering POST /v1/run/:handler inline with crew's reply shape
// ({"result": …}). Handlers: the ones in workers/.
import cluster from "node:cluster";
import { createServer } from "node:http";
import { parseArgs } from "node:util";
import echo from "../../workers/echo.js";
import fib from "../../workers/fib.js";
import { failed, serve } from "../lib/servers.js";

const HANDLERS = { echo, fib };

if (cluster.isPrimary) {
  const { values } = parseArgs({ options: { workers: { type: "string", default: "2" } } });
  // The primary picks a free port and hands it to the workers, which share it.
  const probe = createServer();
  probe.listen(0, "127.0.0.1", async () => {
    const port = probe.address().port;
    probe.close();
    const workers = Array.from({ length: Number(values.workers) }, () => cluster.fork({ BENCH_PORT: String(port) }));
    try {
      await Promise.all(workers.map((w) => new Promise((resolve, reject) => {
        w.once("listening", resolve);
        w.once("exit", () => reject(new Error("a worker exited before listening")));
      })));
      serve({ httpPort: port }, () => Promise.all(workers.map((w) => new Promise((r) => { w.once("exit", r); w.kill(); }))));
    } catch (err) {
      failed(err);
    }
  });
} else {
  createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const name = req.url.slice("/v1/run/".length);
      let status = 200;
      let body;
      try {
        const text = Buffer.concat(chunks).toString();
        body = JSON.stringify({ result: HANDLERS[name](text ? JSON.parse(text) : undefined) ?? null });
      } catch (err) {
        status = 500;
        body = JSON.stringify({ error: { code: "E_HANDLER", message: err.message } });
      }
      res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
      res.end(body);
    });
  }).listen(Number(process.env.BENCH_PORT), "127.0.0.1");
}
