/**
 * What a node writes: every line is a JSON log line with the node's id, written
 * synchronously to fd 1, so a line written just before the node dies is out (a thread's
 * own process.stdout is relayed through its parent asynchronously, and lost when the
 * thread is terminated). fd 1 of a process node, or of the process hosting thread nodes,
 * is a pipe the primary reads and relays through its own logger (see nodes/output-relay.ts).
 * A handler's console.log and console.error become such lines too, with the request id
 * when one attempt is running.
 */
import { writeSync } from "node:fs";
import { createRequire } from "node:module";
import type { Logger } from "pino";

/** Longest partial line kept while waiting for its newline; a longer one goes out in pieces. */
const MAX_PARTIAL = 64 * 1024;
const SLEEP = new Int32Array(new SharedArrayBuffer(4));

/**
 * Writes `text` to fd 1 now. A full pipe (EAGAIN) is waited out, up to ~1 s; a reader that
 * is gone (EPIPE) costs the text only, never the node.
 */
export function writeOut(text: string): void {
  const buf = Buffer.from(text);
  let off = 0;
  for (let waits = 0; off < buf.length; ) {
    try {
      off += writeSync(1, buf, off);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EAGAIN" || waits++ >= 1000) return;
      Atomics.wait(SLEEP, 0, 0, 1);
    }
  }
}

/**
 * The node's pino logger (JSON lines with `node`, written synchronously), made at the
 * first call: most nodes never log a line (only a handler's console output, ctx.log or a
 * handler error does), and loading pino costs every node's start ~30 ms of one core.
 */
export function nodeLogger(level: string, nodeId: string): () => Logger {
  let log: Logger | null = null;
  return () => {
    if (!log) {
      const { pino } = createRequire(import.meta.url)("pino") as typeof import("pino");
      log = pino({ level, base: { node: nodeId } }, { write: writeOut });
    }
    return log;
  };
}

/**
 * Turns writes to process.stdout and process.stderr (console.log, console.error, a
 * handler's own writes) into log lines: stdout at info, stderr at warn, each with
 * `stream` and the request id `requestId()` gives, if any.
 */
export function captureConsole(log: () => Logger, requestId: () => string | undefined): void {
  capture(process.stdout, "stdout", (fields, line) => log().info(fields, line), requestId);
  capture(process.stderr, "stderr", (fields, line) => log().warn(fields, line), requestId);
}

function capture(
  stream: NodeJS.WriteStream,
  name: string,
  emit: (fields: Record<string, unknown>, line: string) => void,
  requestId: () => string | undefined,
): void {
  let partial = "";
  const flush = (line: string) => {
    const id = requestId();
    emit(id === undefined ? { stream: name } : { stream: name, requestId: id }, line);
  };
  stream.write = ((chunk: string | Uint8Array, encoding?: unknown, callback?: unknown): boolean => {
    partial += typeof chunk === "string" ? chunk : Buffer.from(chunk).toString("utf8");
    let nl: number;
    while ((nl = partial.indexOf("\n")) >= 0) {
      flush(partial.slice(0, nl));
      partial = partial.slice(nl + 1);
    }
    if (partial.length > MAX_PARTIAL) {
      flush(partial);
      partial = "";
    }
    const done = typeof encoding === "function" ? encoding : callback;
    if (typeof done === "function") queueMicrotask(() => (done as () => void)());
    return true;
  }) as typeof stream.write;
}
