// The dispatch baselines of scenarios 1 and 2: a plain `net` server speaking the same
// NDJSON framing as crew, written the obvious way (split lines, JSON.parse, one write per
// reply). --mode inline runs the handler on the server's own thread; --mode piscina calls
// piscina.run per request on --threads worker threads. Handlers: the ones in workers/.
import { createServer } from "node:net";
import { parseArgs } from "node:util";
import { Piscina } from "piscina";
import echo from "../../workers/echo.js";
import fib from "../../workers/fib.js";
import { failed, serve } from "../lib/servers.js";

const { values } = parseArgs({ options: { mode: { type: "string", default: "inline" }, threads: { type: "string", default: "2" } } });
const HANDLERS = { echo, fib };

let run;
let pool = null;
if (values.mode === "piscina") {
  const threads = Number(values.threads);
  pool = new Piscina({ filename: new URL("./piscina-task.js", import.meta.url).href, minThreads: threads, maxThreads: threads });
  run = (handler, payload) => pool.run({ handler, payload });
} else {
  run = (handler, payload) => HANDLERS[handler](payload);
}

function reply(socket, id, ok, value) {
  const body = ok ? `"ok":true,"result":${JSON.stringify(value ?? null)}` : `"ok":false,"error":{"code":"E_HANDLER","message":${JSON.stringify(String(value?.message ?? value))}}`;
  socket.write(`{"id":${JSON.stringify(id)},${body}}\n`);
}

async function handle(socket, line) {
  const frame = JSON.parse(line);
  try {
    reply(socket, frame.id, true, await run(frame.handler, frame.payload));
  } catch (err) {
    reply(socket, frame.id, false, err);
  }
}

const server = createServer({ noDelay: true }, (socket) => {
  let rest = "";
  socket.setEncoding("utf8");
  socket.on("error", () => {});
  socket.on("data", (chunk) => {
    const lines = (rest + chunk).split("\n");
    rest = lines.pop();
    for (const line of lines) if (line) handle(socket, line);
  });
});

server.once("error", failed);
server.listen(0, "127.0.0.1", () => {
  serve({ port: server.address().port }, async () => {
    server.close();
    await pool?.destroy();
  });
});
