/**
 * `crew status`: GET /v1/status from a running cluster's HTTP front, shown as a table of
 * nodes and a summary of the queue and request counters; `--json` prints the reply as it
 * came; `--requests` adds the oldest requests in flight (GET /v1/requests); `--watch`
 * redraws every interval (in place on a terminal) until Ctrl-C.
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { ArgumentsCamelCase, Argv, CommandModule } from "yargs";
import type { ClusterStatus } from "../primary/cluster.js";
import { hostPort } from "../protocol/address.js";
import { clusterAddress } from "./config-sources.js";
import { CLIENT_FLAGS, declareFlags, numberOption } from "./flags.js";
import { UsageError } from "./usage-error.js";
import { formatRequests, formatStatus } from "./status-format.js";

export { duration, formatRequests, formatStatus } from "./status-format.js";

interface StatusArgs {
  json: boolean;
  watch: boolean;
  intervalMs: number;
  requests: boolean;
}

const FETCH_TIMEOUT_MS = 5000;
/** How many requests in flight --requests shows (the oldest). */
const REQUESTS_SHOWN = 20;

export const statusCommand: CommandModule<object, StatusArgs> = {
  command: "status",
  describe: "Show a running cluster's nodes, queue and counters",
  builder: (y: Argv) =>
    declareFlags(y, CLIENT_FLAGS)
      .option("json", { type: "boolean", default: false, describe: "Print GET /v1/status's JSON as it is (with --requests: {status, requests})" })
      .option("requests", { type: "boolean", default: false, describe: `Also list the requests in flight (the ${REQUESTS_SHOWN} oldest): id, handler, node, attempt, age, checkpoint age` })
      .option("watch", { type: "boolean", default: false, describe: "Redraw every --interval-ms until Ctrl-C" })
      .option("interval-ms", numberOption("interval-ms", "Refresh interval for --watch", 1000))
      .check((a) => {
        if (!Number.isInteger(a.intervalMs) || (a.intervalMs as number) < 50) throw new UsageError(`--interval-ms must be an integer ≥ 50, got ${a.intervalMs}`);
        return true;
      }) as unknown as Argv<StatusArgs>,
  handler: async (args: ArgumentsCamelCase<StatusArgs>) => {
    const { host, httpPort } = clusterAddress(args);
    const base = `http://${hostPort(host, httpPort)}`;
    if (args.watch) return watch(base, args);
    try {
      process.stdout.write(`${await snapshot(base, args)}\n`);
    } catch (err) {
      console.error(`crew: ${(err as Error).message}`);
      process.exitCode = 1;
    }
  },
};

/** The status (and the requests in flight, when asked) as text or JSON. */
async function snapshot(base: string, args: StatusArgs): Promise<string> {
  const status = await fetchText(`${base}/v1/status`);
  if (!args.requests) return args.json ? status : formatStatus(JSON.parse(status) as ClusterStatus);
  const requests = await fetchText(`${base}/v1/requests?limit=${REQUESTS_SHOWN}`);
  if (args.json) return `{"status":${status},"requests":${requests}}`;
  return `${formatStatus(JSON.parse(status) as ClusterStatus)}\n\n${formatRequests(JSON.parse(requests) as Parameters<typeof formatRequests>[0])}`;
}

/** The body of a GET, or an error that says what went wrong and where. */
async function fetchText(url: string): Promise<string> {
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(FETCH_TIMEOUT_MS) });
  } catch (err) {
    const cause = (err as Error & { cause?: { code?: string; message?: string } }).cause;
    const reason = cause?.code ?? cause?.message ?? (err as Error).message;
    // llhttp's parse errors (HPE_INVALID_CONSTANT, …): something answered, but not in HTTP.
    if (cause?.code?.startsWith("HPE_")) {
      throw new Error(`${url} did not answer in HTTP (${reason}): is that the cluster's TCP port? --http-port takes its HTTP port (crew start logs both when "listening")`);
    }
    throw new Error(`could not reach ${url}: ${reason} (is \`crew start\` running there? --host and --http-port choose the cluster)`);
  }
  const text = await res.text();
  if (!res.ok) throw new Error(`${url} answered ${res.status}: ${text.slice(0, 200)}`);
  return text;
}

/** Refreshes until Ctrl-C; a terminal gets one screen redrawn in place, a pipe gets one block per refresh. */
async function watch(base: string, args: StatusArgs): Promise<void> {
  const stop = new AbortController();
  const onSigint = (): void => stop.abort();
  process.once("SIGINT", onSigint);
  const tty = process.stdout.isTTY === true;
  if (tty && !args.json) process.stdout.write("\x1b[2J");
  try {
    while (!stop.signal.aborted) {
      let body: string;
      try {
        body = await snapshot(base, args);
      } catch (err) {
        body = `crew: ${(err as Error).message}`;
      }
      const heading = `crew status · ${base} · ${new Date().toLocaleTimeString()} · Ctrl-C to quit`;
      process.stdout.write(tty && !args.json ? redraw(`${heading}\n\n${body}`) : `${args.json ? body : `${heading}\n${body}\n`}\n`);
      await sleep(args.intervalMs, undefined, { signal: stop.signal }).catch(() => {});
    }
  } finally {
    process.off("SIGINT", onSigint);
  }
}

/** Cursor home, each line clearing its leftovers, then the rest of the old screen cleared: no flicker. */
function redraw(screen: string): string {
  return `\x1b[H${screen.split("\n").join("\x1b[K\n")}\x1b[K\n\x1b[J`;
}

