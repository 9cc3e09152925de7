// crew's primary, as `crew start` runs it: node servers/crew.js --threads N [--processes M]
// [--handlers DIR] [--http] [--journal FILE] [--thread-host process|primary] (default: the
// BENCH_THREAD_HOST environment variable, else crew's own default). Reports { port, httpPort } (httpPort null without --http).
import { parseArgs } from "node:util";
import { createCluster } from "../../dist/index.js";
import { failed, serve } from "../lib/servers.js";

const { values } = parseArgs({
  options: {
    threads: { type: "string", default: "2" },
    processes: { type: "string", default: "0" },
    handlers: { type: "string", default: new URL("../../workers", import.meta.url).pathname },
    http: { type: "boolean", default: false },
    journal: { type: "string" },
    "thread-host": { type: "string", default: process.env.BENCH_THREAD_HOST },
  },
});

try {
  const cluster = await createCluster({
    handlers: values.handlers,
    threads: Number(values.threads),
    processes: Number(values.processes),
    journal: values.journal,
    threadHost: values["thread-host"],
    logLevel: "silent",
  });
  const { port, httpPort } = await cluster.listen({ port: 0, httpPort: values.http ? 0 : undefined });
  serve({ port, httpPort }, () => cluster.close());
} catch (err) {
  failed(err);
}
