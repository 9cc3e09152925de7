/**
 * The latency histogram crew bench and the dashboard share: HDR, microseconds from
 * 1 µs to one hour, 3 significant digits. hdr-histogram-js (CommonJS) is required on
 * the first call only: importing it costs about as much start time as yargs, and a
 * cluster whose dashboard nobody opens never needs it.
 */
import { createRequire } from "node:module";
import type { Histogram } from "hdr-histogram-js";

let hdr: typeof import("hdr-histogram-js") | null = null;

export function newLatencyHistogram(): Histogram {
  hdr ??= createRequire(import.meta.url)("hdr-histogram-js") as typeof import("hdr-histogram-js");
  return hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: 3 });
}
