/** `crew start`: a local cluster on TCP and HTTP until SIGINT/SIGTERM, which drain it. */
import type { ArgumentsCamelCase, Argv, CommandModule } from "yargs";
import { createLogger } from "../logger.js";
import { LOG_LEVELS } from "../options.js";
import { BALANCER_NAMES } from "../primary/balancers/balancer.js";
import { createCluster } from "../primary/cluster.js";
import { hostOption, httpPortOption, portOption } from "./address-options.js";

interface StartArgs {
  handlers: string;
  threads?: number;
  processes?: number;
  port: number;
  httpPort: number;
  host: string;
  balancer: (typeof BALANCER_NAMES)[number];
  weights?: string;
  seed?: number;
  maxAttempts: number;
  timeoutMs: number;
  maxQueue: number;
  maxFrameBytes: number;
  maxPendingBytes: number;
  maxCheckpointBytes: number;
  maxResultBytes: number;
  threadHost: "process" | "primary";
  nodeStartTimeoutMs: number;
  nodeMemoryMb: number;
  nodeConcurrency: number;
  nodePipeline: number;
  maxConnectionInflight: number;
  priorityAgingMs: number;
  restartBackoffMs: number;
  restartBackoffMaxMs: number;
  drainTimeoutMs: number;
  killGraceMs: number;
  adminToken?: string;
  logLevel: string;
  pretty: boolean;
}

export const startCommand: CommandModule<object, StartArgs> = {
  command: "start",
  describe: "Start a local cluster serving the handlers in a folder",
  builder: (y: Argv) =>
    y
      .option("handlers", { type: "string", default: "workers", describe: "Folder of handler modules (.js, .mjs, .ts)" })
      .option("threads", { type: "number", describe: "Thread nodes [default: one per core, or 0 when --processes is given]" })
      .option("processes", { type: "number", describe: "Child-process nodes [default: 0]" })
      .option("port", { ...portOption, describe: "TCP (NDJSON) port to listen on" })
      .option("http-port", { ...httpPortOption, describe: "HTTP port to listen on" })
      .option("host", { ...hostOption, describe: "Address to bind; 0.0.0.0 exposes the cluster to the network" })
      .option("balancer", { choices: BALANCER_NAMES, default: "least-outstanding" as const, describe: "How a node is picked" })
      .option("weights", { type: "string", describe: "Weights for --balancer weighted: by kind (t=1,p=3) or node id (t0=2)" })
      .option("seed", { type: "number", describe: "Seed for the random and p2c balancers" })
      .option("max-attempts", { type: "number", default: 3, describe: "Attempts per request before E_CRASHED" })
      .option("timeout-ms", { type: "number", default: 60_000, describe: "Default deadline per request" })
      .option("max-queue", { type: "number", default: 10_000, describe: "Requests waiting for a node before E_OVERLOADED" })
      .option("max-frame-bytes", { type: "number", default: 1024 * 1024, describe: "Largest TCP frame or HTTP body" })
      .option("max-pending-bytes", { type: "number", default: 256 * 1024 * 1024, describe: "Bytes of requests accepted and unanswered before E_OVERLOADED" })
      .option("max-checkpoint-bytes", { type: "number", default: 1024 * 1024, describe: "Largest checkpoint state (as JSON)" })
      .option("max-result-bytes", { type: "number", default: 16 * 1024 * 1024, describe: "Largest handler result (as JSON); larger answers E_HANDLER" })
      .option("thread-host", { choices: ["process", "primary"] as const, default: "process" as const, describe: "Where thread nodes run: a host process (a handler's OOM cannot abort the primary) or the primary itself" })
      .option("node-start-timeout-ms", { type: "number", default: 30_000, describe: "How long a node may take to load the handlers before it is killed" })
      .option("node-memory-mb", { type: "number", default: 2048, describe: "Heap cap per node; a node over it is replaced" })
      .option("node-concurrency", { type: "number", default: 1, describe: "Requests running at once on one node" })
      .option("node-pipeline", { type: "number", default: 16, describe: "Short requests a busy node may hold ahead (0: off)" })
      .option("max-connection-inflight", { type: "number", default: 1024, describe: "Requests in flight per TCP connection before reading pauses" })
      .option("priority-aging-ms", { type: "number", default: 1000, describe: "Waiting worth one priority step, against starvation (0: strict priority)" })
      .option("restart-backoff-ms", { type: "number", default: 100, describe: "First restart delay of a node that dies before answering anything" })
      .option("restart-backoff-max-ms", { type: "number", default: 5000, describe: "Cap of that delay, which doubles per death in a row" })
      .option("drain-timeout-ms", { type: "number", default: 30_000, describe: "How long SIGINT/SIGTERM wait for in-flight work" })
      .option("kill-grace-ms", { type: "number", default: 1000, describe: "How long a handler may run past its deadline before its node is killed" })
      .option("admin-token", { type: "string", describe: "Allows the admin endpoints from other hosts than loopback (header x-crew-admin-token)" })
      .option("log-level", { choices: LOG_LEVELS, default: "info", describe: "Log level" })
      .option("pretty", { type: "boolean", default: false, describe: "Human-readable logs instead of JSON lines" }) as unknown as Argv<StartArgs>,
  handler: async (args: ArgumentsCamelCase<StartArgs>) => {
    const logger = createLogger(args.logLevel, { pretty: args.pretty });
    const cluster = await createCluster({
      handlers: args.handlers,
      threads: args.threads,
      processes: args.processes,
      balancer: args.balancer,
      weights: args.weights,
      seed: args.seed,
      maxAttempts: args.maxAttempts,
      timeoutMs: args.timeoutMs,
      maxQueue: args.maxQueue,
      maxFrameBytes: args.maxFrameBytes,
      maxPendingBytes: args.maxPendingBytes,
      maxCheckpointBytes: args.maxCheckpointBytes,
      maxResultBytes: args.maxResultBytes,
      threadHost: args.threadHost,
      nodeStartTimeoutMs: args.nodeStartTimeoutMs,
      nodeMemoryMb: args.nodeMemoryMb,
      nodeConcurrency: args.nodeConcurrency,
      nodePipeline: args.nodePipeline,
      maxConnectionInflight: args.maxConnectionInflight,
      priorityAgingMs: args.priorityAgingMs,
      restartBackoffMs: args.restartBackoffMs,
      restartBackoffMaxMs: args.restartBackoffMaxMs,
      drainTimeoutMs: args.drainTimeoutMs,
      killGraceMs: args.killGraceMs,
      logLevel: args.logLevel,
      logger,
    });
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      logger.info({ signal }, "signal received: draining");
      cluster.close().then(
        () => process.exit(0),
        (err: unknown) => {
          logger.error({ err }, "shutdown failed");
          process.exit(1);
        },
      );
    };
    process.on("SIGINT", () => stop("SIGINT"));
    process.on("SIGTERM", () => stop("SIGTERM"));
    try {
      await cluster.listen({ port: args.port, host: args.host, httpPort: args.httpPort, adminToken: args.adminToken });
    } catch (err) {
      await cluster.close();
      throw err;
    }
  },
};
