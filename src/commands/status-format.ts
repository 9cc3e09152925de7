/** `crew status` as text: the node table, the counters, the requests in flight. Pure, for tests. */
import type { ClusterStatus, NodeStatus } from "../primary/cluster.js";
import type { RequestStatus } from "../primary/request-status.js";

const MIB = 1024 * 1024;

interface Column<T> {
  title: string;
  right: boolean;
  cell: (row: T) => string;
}

/** Rows as aligned columns under a title line; numbers right-aligned. */
function table<T>(columns: Array<Column<T>>, items: readonly T[]): string[] {
  const rows = [columns.map((c) => c.title), ...items.map((item) => columns.map((c) => c.cell(item)))];
  const widths = columns.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) =>
    r
      .map((cell, i) => (columns[i]!.right ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd(),
  );
}

const COLUMNS: Array<Column<NodeStatus>> = [
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
  const q = status.requests;
  return [
    ...table(COLUMNS, status.nodes),
    "",
    `queue      ${status.queue.length} waiting (max ${status.queue.max})`,
    `requests   ${q.active} active · ${q.accepted} accepted · ${q.completed} completed · ${q.failed} failed · ${q.refused} refused`,
    `recovery   ${q.retries} retries · ${q.checkpoints} checkpoints stored${q.hedges ? ` · ${q.hedges} hedges (${q.hedgeWins} won)` : ""}`,
    `cluster    balancer ${status.balancer} · up ${duration(status.uptimeMs)}${status.draining ? " · DRAINING" : ""}`,
    ...scalingLine(status.scaling),
    ...(status.store ? [storeLine(status.store)] : []),
    ...hostLines(status),
  ].join("\n");
}

/** The idempotency keys' store: the journal's file, size and open requests, or memory. */
function storeLine(store: ClusterStatus["store"]): string {
  const keys = `${store.open} open · ${store.kept} replies kept (max ${store.maxKept} keys) · ${store.replayed} replayed · ${store.joined} joined`;
  if (store.kind !== "journal") return `keys       ${store.kind} · ${keys}`;
  return `journal    ${store.file} · ${mib(store.sizeBytes)} MiB · ${keys}`;
}

/** With --redis: one line per host of the cluster (this one marked), with its nodes as its last heartbeat told. */
function hostLines(status: ClusterStatus): string[] {
  if (!status.hosts) return [];
  const lines = status.hosts.map((h) => {
    const nodes = h.nodes.length === 0 ? "gateway (no nodes)" : h.nodes.map((n) => `${n.id} ${n.state} ${n.inFlight} in flight`).join(", ");
    return `  ${h.self ? "*" : " "} ${h.id}  ${nodes} · holds ${h.held} · seen ${h.lastSeenMs} ms ago`;
  });
  return [`hosts      ${status.hosts.length} in the cluster (this one: ${status.host})`, ...lines];
}

/** "nodes      threads 3 (2..8) · processes 0 · elastic: up after 100 ms waiting, down after 30000 ms idle". */
function scalingLine(scaling: ClusterStatus["scaling"] | undefined): string[] {
  if (!scaling) return []; // a cluster from before elastic nodes
  const count = (c: { now: number; min: number; max: number }) => `${c.now}${c.min === c.max ? "" : ` (${c.min}..${c.max})`}`;
  const elastic = scaling.elastic ? ` · elastic: up after ${scaling.elastic.scaleUpMs} ms waiting, down after ${scaling.elastic.idleTimeoutMs} ms idle` : "";
  return [`nodes      threads ${count(scaling.threads)} · processes ${count(scaling.processes)}${elastic}`];
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

const REQUEST_COLUMNS: Array<Column<RequestStatus>> = [
  { title: "REQUEST", right: false, cell: (r) => r.id },
  { title: "HANDLER", right: false, cell: (r) => r.handler },
  { title: "STATE", right: false, cell: (r) => r.state },
  { title: "NODE", right: false, cell: (r) => r.node ?? (r.lastNode ? `(${r.lastNode})` : "-") },
  { title: "ATTEMPT", right: true, cell: (r) => String(r.attempt) },
  { title: "PRIORITY", right: true, cell: (r) => String(r.priority) },
  { title: "AGE", right: true, cell: (r) => seconds(r.ageMs) },
  { title: "CHECKPOINT AGE", right: true, cell: (r) => (r.checkpointAgeMs === null ? "-" : seconds(r.checkpointAgeMs)) },
];

/**
 * GET /v1/requests as text: the oldest requests in flight, one a line, and how many more
 * there are (`total` counts them all). A waiting request shows its last node in brackets.
 */
export function formatRequests(body: { total: number; requests: RequestStatus[] }): string {
  if (body.requests.length === 0) return "no requests in flight";
  const more = body.total - body.requests.length;
  return [...table(REQUEST_COLUMNS, body.requests), ...(more > 0 ? [`… and ${more} more (the oldest are shown)`] : [])].join("\n");
}

/** 1234 → "1.2s". */
function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)}s`;
}
