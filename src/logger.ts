/** The primary's pino logger: JSON lines by default, pino-pretty for people (`--pretty`). */
import pino, { type Logger } from "pino";
import pretty from "pino-pretty";

export function createLogger(level: string, options: { pretty?: boolean } = {}): Logger {
  const base = { name: "crew" };
  if (options.pretty) return pino({ level, base }, pretty({ colorize: true, ignore: "pid,hostname,name" }));
  return pino({ level, base });
}
