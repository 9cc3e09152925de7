/**
 * The primary's end of a node process's stdout and stderr: each line becomes a line of
 * the primary's log, so crew's output stays one stream of JSON lines (or readable ones
 * with --pretty) and a log shipper never meets raw text. A node's own JSON log lines keep
 * their level and fields; raw text (an uncaught exception's stack, V8's out-of-memory
 * report) is logged at warn with the node, the lines of one read as one entry.
 */
import type { Readable } from "node:stream";
import type { Logger } from "pino";

/** Longest line kept; the rest of a longer line is cut (memory per node stays bounded). */
const MAX_LINE = 64 * 1024;

/** V8's fatal out-of-memory report, as it begins on stderr. */
const OOM = /JavaScript heap out of memory|Allocation failed|Reached heap limit/;

export interface RelayState {
  /** True once the stream showed V8's out-of-memory report. */
  outOfMemory: boolean;
}

/** Reads `stream` line by line into `log`; `source` fields (node ids) go on raw lines. */
export function relayOutput(stream: Readable, primaryLog: Logger, source: Record<string, unknown>, name: "stdout" | "stderr", state: RelayState): void {
  // A node's line holds its error already serialised ({type: "RangeError", message, stack}):
  // pino's err serialiser would take it for an error object and call its type "Object".
  const log = primaryLog.child({}, { serializers: { err: (err: unknown) => err } });
  let partial = "";
  let cut = false;
  stream.setEncoding("utf8");
  stream.on("data", (chunk: string) => {
    const raw: string[] = [];
    let text = partial + chunk;
    let nl: number;
    while ((nl = text.indexOf("\n")) >= 0) {
      if (!cut) relayLine(text.slice(0, nl), log, raw);
      cut = false;
      text = text.slice(nl + 1);
    }
    if (text.length > MAX_LINE) {
      if (!cut) relayLine(text.slice(0, MAX_LINE), log, raw);
      cut = true;
      text = "";
    }
    partial = text;
    if (raw.length === 0) return;
    const msg = raw.join("\n");
    if (OOM.test(msg)) state.outOfMemory = true;
    log.warn({ ...source, stream: name }, msg);
  });
  stream.on("end", () => {
    if (partial && !cut) log.warn({ ...source, stream: name }, partial);
  });
  stream.on("error", () => {});
}

/** Relays a node's JSON log line at its own level, or keeps a raw line in `raw`. */
function relayLine(line: string, log: Logger, raw: string[]): void {
  if (line.startsWith("{")) {
    try {
      const { level, time: _time, msg, pid: _pid, hostname: _host, ...fields } = JSON.parse(line) as Record<string, unknown>;
      const label = typeof level === "number" ? log.levels.labels[level] : undefined;
      if (label && label in log) {
        (log[label as "info"] as (obj: object, msg?: string) => void)(fields, typeof msg === "string" ? msg : undefined);
        return;
      }
    } catch {
      // not a log line after all: relayed as text
    }
  }
  if (line.length > 0) raw.push(line);
}
