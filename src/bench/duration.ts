/** Durations on the command line: "500ms", "10s", "2m", or a bare number of milliseconds. */
import { InvalidOptionError } from "../errors.js";

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000 };

export function parseDuration(text: string, name: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$/.exec(text);
  const value = match ? Number(match[1]) * UNITS[match[2] ?? "ms"]! : NaN;
  if (!(value > 0)) {
    throw new InvalidOptionError(`${name} must be a duration like 500ms, 10s or 2m, got ${JSON.stringify(text)}`);
  }
  return value;
}
