/**
 * The primary's pino logger: JSON lines by default, pino-pretty for people (`--pretty`,
 * coloured only on a terminal, so a file gets no escape codes). A reader that goes away
 * (`crew start | head`, a restarting log shipper) costs log lines, never the primary:
 * write errors on stdout are dropped.
 */
import { createRequire } from "node:module";
import pino, { type Logger } from "pino";

export function createLogger(level: string, options: { pretty?: boolean } = {}): Logger {
  const base = { name: "crew" };
  ignoreStdoutErrors();
  if (options.pretty) {
    // Loaded only when asked for: it costs about as much start time as yargs.
    const pretty = createRequire(import.meta.url)("pino-pretty") as typeof import("pino-pretty");
    return pino({ level, base }, pretty({ colorize: process.stdout.isTTY === true, ignore: "pid,hostname,name", destination: stdoutDestination() }));
  }
  return pino({ level, base }, stdoutDestination());
}

function stdoutDestination(): pino.DestinationStream {
  // maxLength: lines waiting for a reader that never drains are dropped past 16 MiB.
  const dest = pino.destination({ dest: 1, sync: false, maxLength: 16 * 1024 * 1024 });
  dest.on("error", () => {}); // EPIPE: the reader is gone; the lines are lost, the primary is not
  return dest;
}

let ignoring = false;

/** Other writes to stdout (a handler's console.log relayed by a thread) must not end the process either. */
export function ignoreStdoutErrors(): void {
  if (ignoring) return;
  ignoring = true;
  process.stdout.on("error", () => {});
}
