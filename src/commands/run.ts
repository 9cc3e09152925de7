/**
 * `crew run <handler> [payload-json]`: one request from the shell, over the TCP protocol
 * through the Client. The payload is JSON given inline, `-` (read from stdin) or
 * `@FILE` (read from a file). The result goes to stdout as JSON (exit 0), or with
 * `--meta` as `{"result": …, "meta": …}`; an error reply goes to stderr as
 * `CODE: message` (exit 1); a payload that is not JSON exits 2 before connecting.
 * Ctrl-C cancels the request on the cluster (exit 130).
 */
import { readFile } from "node:fs/promises";
import type { ArgumentsCamelCase, Argv, CommandModule } from "yargs";
import { CrewError } from "../errors.js";
import { Client } from "../protocol/client.js";
import { clusterAddress } from "./config-sources.js";
import { CLIENT_FLAGS, declareFlags, numberOption, stringOption } from "./flags.js";

interface RunArgs {
  handler: string;
  payloadJson?: string;
  key?: string;
  idempotencyKey?: string;
  timeoutMs?: number;
  priority?: number;
  meta: boolean;
}

export const runCommand: CommandModule<object, RunArgs> = {
  command: "run <handler> [payload-json]",
  describe: "Run one request on a running cluster and print its result as JSON",
  builder: (y: Argv) =>
    declareFlags(y, CLIENT_FLAGS)
      .positional("handler", { type: "string", describe: "Handler name (a file in the cluster's handlers folder)" })
      .positional("payload-json", { type: "string", describe: "The payload: JSON, - to read it from stdin, or @FILE to read it from a file [default: none]" })
      .option("key", stringOption("key", "Routing key (the hash balancer keeps a key on one node); not an idempotency key"))
      .option("idempotency-key", stringOption("idempotency-key", "The request's idempotency key: sent again with it, it is answered once [default: a random UUID]"))
      .option("timeout-ms", numberOption("timeout-ms", "Deadline for this request [default: the handler's]"))
      .option("priority", numberOption("priority", "Higher runs first when requests queue"))
      .option("meta", { type: "boolean", default: false, describe: 'Print {"result", "meta"} (request id, node, attempts, ms); on an error, the meta goes to stderr' })
      .example("$0 fib '{\"n\": 30}'", "compute fib(30) on the cluster at 127.0.0.1:7070")
      .example("$0 echo - < payload.json", "send the payload read from stdin")
      .example("$0 echo @payload.json --meta", "send a file's payload, print the result and its meta")
      .example("$0 sum '{\"n\": 1000000}' --idempotency-key job-42", "run it once: the same key again answers the same reply") as unknown as Argv<RunArgs>,
  handler: async (args: ArgumentsCamelCase<RunArgs>) => {
    const address = clusterAddress(args);
    let payload: unknown;
    try {
      // yargs-parser turns a bare "-" positional into "" (a string option's empty value).
      const arg = args.payloadJson === "" && process.argv.includes("-") ? "-" : args.payloadJson;
      payload = await readPayload(arg);
    } catch (err) {
      console.error(`crew: ${(err as Error).message}`);
      process.exitCode = 2;
      return;
    }
    process.exitCode = await runOnce(args, address, payload);
  },
};

/**
 * The payload argument as a value: inline JSON, `-` for stdin, `@FILE` for a file.
 * @throws Error saying where the text came from when it cannot be read or is not JSON.
 */
async function readPayload(arg: string | undefined): Promise<unknown> {
  if (arg === undefined) return undefined;
  let source = "the payload";
  let json = arg;
  if (arg === "-") {
    source = "the payload read from stdin";
    json = await readBounded(process.stdin, source);
  } else if (arg.startsWith("@")) {
    source = `the payload file ${arg.slice(1)}`;
    json = await readFile(arg.slice(1), "utf8").catch((err: Error) => {
      throw new Error(`${source} cannot be read: ${err.message}`);
    });
  }
  try {
    return JSON.parse(json);
  } catch (err) {
    throw new Error(`${source} is not valid JSON: ${(err as Error).message}`);
  }
}

/** The largest payload read from stdin: the largest --max-frame-bytes a cluster accepts. */
const MAX_STDIN_BYTES = 1024 ** 3;

async function readBounded(stream: NodeJS.ReadableStream, source: string): Promise<string> {
  const chunks: Buffer[] = [];
  let bytes = 0;
  for await (const chunk of stream) {
    bytes += (chunk as Buffer).length;
    if (bytes > MAX_STDIN_BYTES) throw new Error(`${source} is over ${MAX_STDIN_BYTES} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString("utf8");
}

/** Sends the request; prints the outcome; returns the exit code. */
async function runOnce(args: RunArgs, address: { host: string; port: number }, payload: unknown): Promise<number> {
  // resubmit: once connected, the call survives a restart of the primary (it is sent
  // again with its idempotency key); connect() first, so no primary at all fails at once.
  const client = new Client({ host: address.host, port: address.port, resubmit: true });
  const abort = new AbortController();
  const onSigint = (): void => abort.abort("interrupted (Ctrl-C)");
  process.once("SIGINT", onSigint);
  try {
    await client.connect();
    const reply = await client.call(args.handler, payload, {
      key: args.key,
      idempotencyKey: args.idempotencyKey,
      timeoutMs: args.timeoutMs,
      priority: args.priority,
      signal: abort.signal,
    });
    if (reply.ok) {
      process.stdout.write(`${JSON.stringify(args.meta ? { result: reply.result, meta: reply.meta } : reply.result)}\n`);
      return 0;
    }
    console.error(`${reply.error!.code}: ${reply.error!.message}`);
    if (args.meta) console.error(JSON.stringify({ meta: reply.meta }));
    return abort.signal.aborted ? 130 : 1;
  } catch (err) {
    if (!(err instanceof CrewError)) throw err;
    if (err.code === "E_CONNECTION") {
      const hint = /answered HTTP/.test(err.message) ? "--port takes the cluster's TCP port" : "is `crew start` running there? --host and --port choose the cluster";
      console.error(`crew: ${err.message} (${hint})`);
    } else {
      console.error(`${err.code}: ${err.message}`);
    }
    return abort.signal.aborted ? 130 : 1;
  } finally {
    process.off("SIGINT", onSigint);
    await client.close();
  }
}
