/**
 * What a handler threw, as the client sees it and as the log records it. The client gets
 * the message, and in `error.cause` the error's `name`, a string `code`, JSON `details`
 * and an HTTP `status` in 400–499, when the handler set them; the stack stays on the
 * server, in a warn line per error (rate-limited, so a failing handler cannot flood the log).
 */
import type { Logger } from "pino";
import type { WireCause, WireError } from "../errors.js";
import { findChange } from "./json-value.js";

/** Details larger than this (as JSON) are not forwarded: a reply is not a dump. */
const MAX_DETAILS_BYTES = 64 * 1024;

/** The wire form of a thrown value: always code E_HANDLER. */
export function handlerWireError(err: unknown): WireError {
  const wire: WireError = { code: "E_HANDLER", message: errorMessage(err) };
  const cause = wireCause(err);
  if (cause) wire.cause = cause;
  return wire;
}

function wireCause(err: unknown): WireCause | undefined {
  if (typeof err !== "object" || err === null) return undefined;
  const e = err as { name?: unknown; code?: unknown; details?: unknown; status?: unknown };
  const cause: WireCause = { name: typeof e.name === "string" && e.name ? e.name : "Error" };
  if (typeof e.code === "string") cause.code = e.code;
  if (e.details !== undefined && findChange(e.details, "details", new Set()) === null) {
    const json = JSON.stringify(e.details);
    if (json.length <= MAX_DETAILS_BYTES) cause.details = JSON.parse(json);
  }
  if (typeof e.status === "number" && Number.isInteger(e.status) && e.status >= 400 && e.status <= 499) cause.status = e.status;
  return cause;
}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message || err.name;
  if (typeof err === "string") return err;
  try {
    return JSON.stringify(err) ?? String(err);
  } catch {
    return String(err);
  }
}

/**
 * Logs handler errors at warn with their stack, at most `perWindow` per `windowMs` on one
 * node; the next line logged says how many were left out meanwhile.
 */
export class HandlerErrorLog {
  #windowStart = 0;
  #inWindow = 0;
  #suppressed = 0;

  constructor(
    /** The node's logger, made at first use (output.ts nodeLogger). */
    readonly log: () => Logger,
    readonly perWindow = 10,
    readonly windowMs = 10_000,
  ) {}

  record(err: unknown, ids: { requestId: string; attempt: number; handler: string }): void {
    if (!this.log().isLevelEnabled("warn")) return;
    const now = Date.now();
    if (now - this.#windowStart >= this.windowMs) {
      this.#windowStart = now;
      this.#inWindow = 0;
    }
    if (this.#inWindow >= this.perWindow) {
      this.#suppressed++;
      return;
    }
    this.#inWindow++;
    const fields: Record<string, unknown> = { ...ids, err: err instanceof Error ? err : { message: errorMessage(err) } };
    if (this.#suppressed > 0) fields.suppressed = this.#suppressed;
    this.#suppressed = 0;
    this.log().warn(fields, "handler threw");
  }
}
