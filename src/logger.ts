/** The primary's pino logger: JSON lines by default, pino-pretty for people (`--pretty`). */
import { createRequire } from "node:module";
import pino, { type Logger } from "pino";

export function createLogger(level: string, options: { pretty?: boolean } = {}): Logger {
  const base = { name: "crew" };
  if (options.pretty) {
    // Loaded only when asked for: it costs about as much start time as yargs.
    const pretty = createRequire(import.meta.url)("pino-pretty") as typeof import("pino-pretty");
    return pino({ level, base }, pretty({ colorize: true, ignore: "pid,hostname,name" }));
  }
  return pino({ level, base });
}
