/**
 * Request ids, unique across primaries and restarts: a boot id (this process's start
 * time in base 36 and 32 random bits) and a counter, e.g. `mim3kz0q-9f2c41d7-17`. One
 * random draw per process instead of a UUID per request; ids of one primary sort by
 * arrival. A request keeps its id when it resumes on another primary (journal restart,
 * Redis takeover), so handlers can key their outside writes by `ctx.requestId`.
 */
import { randomBytes } from "node:crypto";

const BOOT_ID = `${Date.now().toString(36)}-${randomBytes(4).toString("hex")}`;
let counter = 0;

/** A new request id: `<boot id>-<n>`. */
export function newRequestId(): string {
  return `${BOOT_ID}-${++counter}`;
}
