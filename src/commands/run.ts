/**
 * `crew run <handler> [payload-json]`: one request from the shell, over the TCP protocol
 * through the Client. The result goes to stdout as JSON (exit 0); an error reply goes to
 * stderr as `CODE: message` (exit 1); a payload that is not JSON exits 2 before
 * connecting. Ctrl-C cancels the request on the cluster (exit 130).
 */
import type { ArgumentsCamelCase, Argv, CommandModule } from "yargs";
import { CrewError } from "../errors.js";
import { Client } from "../protocol/client.js";
import { clusterAddress } from "./config-sources.js";
import { CLIENT_FLAGS, declareFlags } from "./flags.js";

interface RunArgs {
  handler: string;
  payloadJson?: string;
  key?: string;
  timeoutMs?: number;
  priority?: number;
}

export const runCommand: CommandModule<object, RunArgs> = {
  command: "run <handler> [payload-json]",
  describe: "Run one request on a running cluster and print its result as JSON",
  builder: (y: Argv) =>
    declareFlags(y, CLIENT_FLAGS)
      .positional("handler", { type: "string", describe: "Handler name (a file in the cluster's handlers folder)" })
      .positional("payload-json", { type: "string", describe: "The payload as JSON [default: none]" })
      .option("key", { type: "string", describe: "Routing key (the hash balancer keeps a key on one node)" })
      .option("timeout-ms", { type: "number", describe: "Deadline for this request [default: the handler's]" })
      .option("priority", { type: "number", describe: "Higher runs first when requests queue" })
      .example("$0 run fib '{\"n\": 30}'", "compute fib(30) on the cluster at 127.0.0.1:7070") as unknown as Argv<RunArgs>,
  handler: async (args: ArgumentsCamelCase<RunArgs>) => {
    let payload: unknown;
    try {
      payload = args.payloadJson === undefined ? undefined : JSON.parse(args.payloadJson);
    } catch (err) {
      console.error(`crew: the payload is not valid JSON: ${(err as Error).message}`);
      process.exitCode = 2;
      return;
    }
    process.exitCode = await runOnce(args, clusterAddress(args), payload);
  },
};

/** Sends the request; prints the outcome; returns the exit code. */
async function runOnce(args: RunArgs, address: { host: string; port: number }, payload: unknown): Promise<number> {
  const client = new Client({ host: address.host, port: address.port });
  const abort = new AbortController();
  const onSigint = (): void => abort.abort("interrupted (Ctrl-C)");
  process.once("SIGINT", onSigint);
  try {
    const result = await client.run(args.handler, payload, {
      key: args.key,
      timeoutMs: args.timeoutMs,
      priority: args.priority,
      signal: abort.signal,
    });
    process.stdout.write(`${JSON.stringify(result)}\n`);
    return 0;
  } catch (err) {
    if (!(err instanceof CrewError)) throw err;
    if (err.code === "E_CONNECTION") {
      console.error(`crew: ${err.message} (is \`crew start\` running there? --host and --port choose the cluster)`);
    } else {
      console.error(`${err.code}: ${err.message}`);
    }
    return abort.signal.aborted ? 130 : 1;
  } finally {
    process.off("SIGINT", onSigint);
    await client.close();
  }
}
