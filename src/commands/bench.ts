/**
 * `crew bench`: load a running cluster over TCP and report throughput, latency
 * percentiles, errors by code and retries; with --chaos, kill nodes while it runs and
 * report requests lost (must be 0) and recovery latency. One request goes alone first:
 * a handler the cluster does not have (or a payload it refuses) stops the bench before
 * loading. Exits 1 when most requests failed, when the cluster stayed gone (see
 * GIVE_UP_MS in bench/load.ts), when chaos lost any, or could not kill a single node.
 */
import { writeFileSync } from "node:fs";
import type { ArgumentsCamelCase, Argv, CommandModule } from "yargs";
import { Chaos, parseChaos } from "../bench/chaos.js";
import { parseDuration } from "../bench/duration.js";
import { startLoad } from "../bench/load.js";
import { startProgress } from "../bench/progress.js";
import { type BenchConfig, buildReport, formatReport, lostRequests } from "../bench/report.js";
import { InvalidOptionError } from "../errors.js";
import { clusterAddress, relabel } from "./config-sources.js";
import { CLIENT_FLAGS, declareFlags, numberOption, stringOption } from "./flags.js";

interface BenchArgs {
  handler: string;
  payload?: string;
  connections: number;
  pipeline: number;
  duration?: string;
  requests?: number;
  chaos?: string;
  adminToken?: string;
  json?: string;
  resubmit: boolean;
}

const DEFAULT_DURATION = "10s";

export const benchCommand: CommandModule<object, BenchArgs> = {
  command: "bench",
  describe: "Load a running cluster and report throughput, latency and errors",
  builder: (y: Argv) =>
    declareFlags(y, CLIENT_FLAGS)
      .option("handler", stringOption("handler", "Handler to call", "echo"))
      .option("payload", stringOption("payload", "Payload for every request, as JSON"))
      .option("connections", numberOption("connections", "TCP connections", 8))
      .option("pipeline", numberOption("pipeline", "Requests in flight per connection", 32))
      .option("duration", stringOption("duration", `How long to send, e.g. 10s, 500ms, 2m [default: ${DEFAULT_DURATION}]`))
      .option("requests", numberOption("requests", "Send exactly this many requests instead of --duration"))
      .conflicts("duration", "requests")
      .option("chaos", stringOption("chaos", "Kill a random node on an interval while loading: kill-every=500ms"))
      .option("admin-token", stringOption("admin-token", "Admin token of the cluster (sent as Authorization: Bearer), for --chaos off loopback"))
      .option("json", stringOption("json", "Also write the report to this file as JSON"))
      .option("resubmit", { type: "boolean", default: false, describe: "Key every request and resend unanswered ones after a lost connection (survives a primary restart)" }) as unknown as Argv<BenchArgs>,
  // The load generator's checks name its options (connections, duration): say the flags.
  handler: (args: ArgumentsCamelCase<BenchArgs>) => bench(args).catch((err: unknown) => Promise.reject(relabel(err, FLAG_NAMES))),
};

const FLAG_NAMES = { connections: "--connections", pipeline: "--pipeline", requests: "--requests", duration: "--duration", payload: "--payload", timeoutMs: "--timeout-ms" };

async function bench(args: BenchArgs): Promise<void> {
  const address = clusterAddress(args as unknown as Record<string, unknown>);
  const config: BenchConfig = {
    host: address.host,
    port: address.port,
    handler: args.handler,
    payload: parsePayload(args.payload),
    connections: args.connections,
    pipeline: args.pipeline,
    durationMs: args.requests === undefined ? parseDuration(args.duration ?? DEFAULT_DURATION, "duration") : null,
    requests: args.requests ?? null,
  };
  const chaos = args.chaos
    ? new Chaos({ host: address.host, httpPort: address.httpPort, adminToken: args.adminToken, ...parseChaos(args.chaos) })
    : null;
  await chaos?.check();

  // Ctrl-C stops sending; what is in flight finishes and the report still prints.
  const stopping = new AbortController();
  const onSigint = () => stopping.abort();
  process.once("SIGINT", onSigint);
  const run = startLoad({
    host: config.host,
    port: config.port,
    handler: config.handler,
    payload: config.payload,
    connections: config.connections,
    pipeline: config.pipeline,
    durationMs: config.durationMs ?? undefined,
    requests: config.requests ?? undefined,
    signal: stopping.signal,
    resubmit: args.resubmit,
    onRetried: chaos?.onRetried,
    probe: true,
  });
  chaos?.start();
  const goal = config.requests !== null ? { requests: config.requests } : { durationMs: config.durationMs! };
  const progress = startProgress({ stream: process.stderr, goal, read: () => run.progress() });
  let result;
  try {
    result = await run.done;
  } finally {
    progress.stop();
    await chaos?.stop();
    process.off("SIGINT", onSigint);
  }

  const report = buildReport(config, result, chaos?.figures(lostRequests(result.errors)));
  console.log(formatReport(report).join("\n"));
  if (args.json) writeFileSync(args.json, JSON.stringify(report, null, 2) + "\n");
  // A chaos run fails when it lost requests, or when every kill it tried was refused
  // (then "0 lost" would prove nothing).
  const chaosFigures = report.chaos;
  if (chaosFigures && (chaosFigures.lost > 0 || (chaosFigures.kills === 0 && chaosFigures.killErrors > 0))) process.exitCode = 1;
  // Figures from a run where most requests failed measure the failure, not the cluster.
  if (result.gaveUp) console.error(`crew: ${result.gaveUp}`);
  if (result.gaveUp || report.failed > report.completed) {
    console.error(`crew: ${report.failed} of ${report.failed + report.completed} requests failed (errors above)`);
    process.exitCode = 1;
  }
}

function parsePayload(text: string | undefined): unknown {
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new InvalidOptionError(`payload must be JSON: ${(err as Error).message}`);
  }
}
