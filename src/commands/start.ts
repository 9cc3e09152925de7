/**
 * `crew start`: a local cluster on TCP and HTTP until a signal drains it (signals.ts).
 * Options come from flags, CREW_* variables and a config file (config-sources.ts), and
 * are all checked — values by resolveOptions, ports by binding them — before any node
 * starts.
 */
import { existsSync } from "node:fs";
import type { ArgumentsCamelCase, Argv, CommandModule } from "yargs";
import { UsageError } from "./usage-error.js";
import { createLogger } from "../logger.js";
import { checkListenAddress, type ClusterOptions, resolveOptions } from "../options.js";
import { createCluster } from "../primary/cluster.js";
import { discardPreforked } from "../nodes/host-prefork.js";
import { findHandlers } from "../primary/handler-registry.js";
import { checkAddressFree, describeListenError } from "./check-address.js";
import { type Gathered, gatherOptions, pick, relabel } from "./config-sources.js";
import { declareFlags, START_FLAGS } from "./flags.js";
import { SignalControl } from "./signals.js";
import { withoutPassword } from "../store/redis/redis-url.js";

export const startCommand: CommandModule<object, object> = {
  command: "start",
  describe: "Start a local cluster serving the handlers in a folder",
  builder: (y: Argv) =>
    declareFlags(y, START_FLAGS, resolveOptions({}) as unknown as Record<string, unknown>)
      .example("$0 --handlers ./workers --threads 4", "serve ./workers on 127.0.0.1:7070 (TCP) and :7071 (HTTP)")
      .example("CREW_THREADS=4 $0 --print-config", "show the options flags, CREW_* variables and crew.config.json give"),
  handler: async (argv: ArgumentsCamelCase) => {
    const gathered = gatherOptions(argv, START_FLAGS);
    const { cluster: clusterInput, listen, cli } = checkAll(gathered);
    if (cli.printConfig) return printConfig(gathered);
    if (gathered.values.handlers === undefined && !existsSync(resolveOptions({ threads: 1 }).handlers)) {
      throw new UsageError(`there is no ./workers folder in ${process.cwd()}: pass --handlers DIR, the folder of your handler modules`);
    }
    await checkAddressFree(listen, gathered.from);

    const logger = createLogger(String(clusterInput.logLevel ?? "info"), { pretty: cli.pretty === true });
    const options = resolveOptions(clusterInput);
    try {
      // A folder that cannot be read is a bad --handlers: say so before any node starts.
      findHandlers(options.handlers);
    } catch (err) {
      throw relabel(err, gathered.from);
    }
    const signals = new SignalControl(logger, options.killGraceMs);
    logger.info({ handlers: options.handlers, threads: options.threads, processes: options.processes }, "starting nodes");
    let cluster;
    try {
      cluster = await signals.starting(createCluster({ ...clusterInput, logger }));
    } finally {
      discardPreforked(); // the thread host main() forked ahead: unneeded if no thread node took it
    }
    if (signals.stopping) return;
    try {
      await cluster.listen({ port: listen.port, host: listen.host, httpPort: listen.httpPort ?? undefined, adminToken: listen.adminToken });
    } catch (err) {
      if (signals.stopping) return; // a signal closed the cluster while it was starting to listen
      await cluster.closeNow();
      throw describeListenError(err as NodeJS.ErrnoException, listen, null, gathered.from);
    }
  },
};

/** The option values and the address, checked; split by where they go. */
function checkAll(gathered: Gathered) {
  const cluster = pick(gathered.values, START_FLAGS, "cluster") as ClusterOptions;
  const listenInput = pick(gathered.values, START_FLAGS, "listen");
  const cli = pick(gathered.values, START_FLAGS, "cli");
  let listen;
  try {
    resolveOptions(cluster);
    listen = { ...checkListenAddress(listenInput), adminToken: listenInput.adminToken as string | undefined };
  } catch (err) {
    throw relabel(err, gathered.from);
  }
  return { cluster, listen, cli };
}

/** --print-config: the resolved options as JSON, and where each value came from. */
function printConfig(gathered: Gathered): void {
  const options: Record<string, unknown> = { ...resolveOptions(pick(gathered.values, START_FLAGS, "cluster")) };
  delete options.logger;
  const listen = pick(gathered.values, START_FLAGS, "listen");
  if (typeof options.redis === "string") options.redis = withoutPassword(options.redis); // printed as the logs show it
  const out = { options: { ...options, ...checkListenAddress(listen), adminToken: listen.adminToken === undefined ? null : "(set)" }, from: gathered.from, configFile: gathered.file };
  process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
}
