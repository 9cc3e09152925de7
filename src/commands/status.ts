/**
 * `crew status`: GET /v1/status from a running cluster's HTTP front, shown as a table of
 * nodes and a summary of the queue and request counters; `--json` prints the reply as it
 * came; `--watch` redraws every interval (in place on a terminal) until Ctrl-C.
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { ArgumentsCamelCase, Argv, CommandModule } from "yargs";
import type { ClusterStatus, NodeStatus } from "../primary/cluster.js";
import { hostPort } from "../protocol/address.js";
import { clusterAddress } from "./config-sources.js";
import { CLIENT_FLAGS, declareFlags } from "./flags.js";

interface StatusArgs {
  json: boolean;
  watch: boolean;
  intervalMs: number;
}

const FETCH_TIMEOUT_MS = 5000;
const MIB = 1024 * 1024;

export const statusCommand: CommandModule<object, StatusArgs> = {
  command: "status",
  describe: "Show a running cluster's nodes, queue and counters",
  builder: (y: Argv) =>
    declareFlags(y, CLIENT_FLAGS)
      .option("json", { type: "boolean", default: false, describe: "Print GET /v1/status's JSON as it is" })
      .option("watch", { type: "boolean", default: false, describe: "Redraw every --interval-ms until Ctrl-C" })
      .option("interval-ms", { type: "number", default: 1000, describe: "Refresh interval for --watch" })
      .check((a) => {
        if (!Number.isInteger(a.intervalMs) || (a.intervalMs as number) < 50) throw new Error("--interval-ms must be an integer ≥ 50");
        return true;
      }) as unknown as Argv<StatusArgs>,
  handler: async (args: ArgumentsCamelCase<StatusArgs>) => {
    const { host, httpPort } = clusterAddress(args);
    const url = `http://${hostPort(host, httpPort)}/v1/status`;
    if (args.watch) return watch(url, args);
    try {
      const text = await fetchStatus(url);
      process.stdout.write(args.json ? `${text}\n` : `${formatStatus(JSON.parse(text) as ClusterStatus)}\n`);
    } catch (err) {
      console.error(`crew: ${(err as Error).message}`);
      process.exitCode = 1;
    }
  },
};

/** The body of GET /v1/status, or an error that says what went wrong and where. */
async function fetchStatus(url: string): Promise<string> {
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
async function watch(url: string, args: StatusArgs): Promise<void> {
  const stop = new AbortController();
  const onSigint = (): void => stop.abort();
  process.once("SIGINT", onSigint);
  const tty = process.stdout.isTTY === true;
  if (tty && !args.json) process.stdout.write("\x1b[2J");
  try {
    while (!stop.signal.aborted) {
      let body: string;
      try {
        const text = await fetchStatus(url);
        body = args.json ? text : formatStatus(JSON.parse(text) as ClusterStatus);
      } catch (err) {
        body = `crew: ${(err as Error).message}`;
      }
      const heading = `crew status · ${url} · ${new Date().toLocaleTimeString()} · Ctrl-C to quit`;
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

const COLUMNS: Array<{ title: string; right: boolean; cell: (n: NodeStatus) => string }> = [
  { title: "NODE", right: false, cell: (n) => n.id },
  { title: "KIND", right: false, cell: (n) => n.kind },
  { title: "PID/THREAD", right: false, cell: (n) => (n.kind === "thread" ? `thread ${n.threadId ?? "-"}` : `pid ${n.pid ?? "-"}`) },
  { title: "STATE", right: false, cell: (n) => n.state },
  { title: "IN FLIGHT", right: true, cell: (n) => String(n.inFlight) },
  { title: "COMPLETED", right: true, cell: (n) => String(n.completed) },
  { title: "CRASHES", right: true, cell: (n) => String(n.crashes) },
  { title: "RESTARTS", right: true, cell: (n) => String(n.restarts) },
  { title: "HEAP MiB", right: true, cell: (n) => mib(n.heapUsed) },
  // A thread's RSS is the whole primary's, so only process nodes show one.
  { title: "RSS MiB", right: true, cell: (n) => (n.kind === "process" ? mib(n.rss) : "-") },
  { title: "LAST EXIT", right: false, cell: (n) => n.lastExit ?? "-" },
];

/** The status as text: the node table, then the queue and request counters. Pure, for tests. */
export function formatStatus(status: ClusterStatus): string {
  const rows = [COLUMNS.map((c) => c.title), ...status.nodes.map((n) => COLUMNS.map((c) => c.cell(n)))];
  const widths = COLUMNS.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const table = rows.map((r) =>
    r
      .map((cell, i) => (COLUMNS[i]!.right ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd(),
  );
  const q = status.requests;
  return [
    ...table,
    "",
    `queue      ${status.queue.length} waiting (max ${status.queue.max})`,
    `requests   ${q.active} active · ${q.accepted} accepted · ${q.completed} completed · ${q.failed} failed · ${q.refused} refused`,
    `recovery   ${q.retries} retries · ${q.checkpoints} checkpoints stored`,
    `cluster    balancer ${status.balancer} · up ${duration(status.uptimeMs)}${status.draining ? " · DRAINING" : ""}`,
    ...(status.store ? [storeLine(status.store)] : []),
  ].join("\n");
}

/** The idempotency keys' store: the journal's file, size and open requests, or memory. */
function storeLine(store: ClusterStatus["store"]): string {
  const keys = `${store.open} open · ${store.kept} replies kept (max ${store.maxKept} keys) · ${store.replayed} replayed · ${store.joined} joined`;
  if (store.kind !== "journal") return `keys       ${store.kind} · ${keys}`;
  return `journal    ${store.file} · ${mib(store.sizeBytes)} MiB · ${keys}`;
}

function mib(bytes: number | null): string {
  return bytes === null ? "-" : (bytes / MIB).toFixed(1);
}

/** 3723000 → "1h 2m 3s". */
export function duration(ms: number): string {
  const s = Math.floor(ms / 1000);
  const parts = [Math.floor(s / 86400) + "d", Math.floor((s % 86400) / 3600) + "h", Math.floor((s % 3600) / 60) + "m", (s % 60) + "s"];
  const first = parts.findIndex((p) => !p.startsWith("0"));
  return first === -1 ? "0s" : parts.slice(first).join(" ");
}
