/**
 * The frames of DESIGN.md's wire protocol: parsing and checking what a client sends,
 * and the reply shape both receivers and the client share.
 */
import { BadRequestError, type CrewError, type WireError } from "../errors.js";
import type { Outcome } from "../primary/job.js";

export type RequestId = string | number;

export interface RunFrame {
  op: "run";
  id: RequestId;
  handler: string;
  payload: unknown;
  key: string | undefined;
  timeoutMs: number | undefined;
  priority: number | undefined;
  /** The frame's length, for the pending-bytes budget. */
  bytes: number;
}

export interface CancelFrame {
  op: "cancel";
  id: RequestId;
}

export interface PingFrame {
  op: "ping";
  id: RequestId;
}

export type RequestFrame = RunFrame | CancelFrame | PingFrame;

/** What the reply tells about how a request ran. `node` is null when it never reached one. */
export interface ReplyMeta {
  node: string | null;
  attempts: number;
  ms: number;
  /** Several hosts (--redis): the host whose node ran the last attempt. */
  host?: string;
}

export type Reply =
  | { id: RequestId | null; ok: true; result: unknown; meta?: ReplyMeta }
  | { id: RequestId | null; ok: false; error: WireError; meta?: ReplyMeta };

export type ParseResult = { frame: RequestFrame } | { error: CrewError; id: RequestId | null };

/** Handler names are plain identifiers: a request names a handler, never a path. */
export const HANDLER_NAME = /^[A-Za-z0-9_][A-Za-z0-9_-]{0,127}$/;

const MAX_ID_LENGTH = 256;

/** The longest delay a Node.js timer holds; setTimeout turns a longer one into 1 ms. */
export const MAX_TIMEOUT_MS = 2 ** 31 - 1;

export function parseFrame(line: string): ParseResult {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return bad(null, "frame is not valid JSON");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return bad(null, "frame must be a JSON object");
  }
  const obj = value as Record<string, unknown>;
  const id = obj.id;
  if (!isRequestId(id)) {
    return bad(null, `id must be a string of at most ${MAX_ID_LENGTH} characters or a finite number`);
  }
  const op = obj.op ?? "run";
  switch (op) {
    case "run":
      return parseRun(obj, id, line.length);
    case "cancel":
      return { frame: { op: "cancel", id } };
    case "ping":
      return { frame: { op: "ping", id } };
    default:
      return bad(id, `unknown op ${JSON.stringify(op)}: expected "run", "cancel" or "ping"`);
  }
}

function parseRun(obj: Record<string, unknown>, id: RequestId, bytes: number): ParseResult {
  const handler = obj.handler;
  if (typeof handler !== "string") return bad(id, "handler must be a string");
  const invalid = checkRunFields(handler, obj.key, obj.timeoutMs, obj.priority);
  if (invalid) return bad(id, invalid);
  return {
    frame: {
      op: "run",
      id,
      handler,
      payload: obj.payload,
      key: obj.key as string | undefined,
      timeoutMs: obj.timeoutMs as number | undefined,
      priority: obj.priority as number | undefined,
      bytes,
    },
  };
}

/**
 * Checks the fields of a run request; returns what is wrong, or undefined. The HTTP
 * receiver checks its path and headers through this too, so both fronts agree.
 */
export function checkRunFields(handler: string, key: unknown, timeoutMs: unknown, priority: unknown): string | undefined {
  if (!HANDLER_NAME.test(handler)) {
    return `handler must be a handler name (letters, digits, "_" and "-"), not ${JSON.stringify(handler.slice(0, 64))}`;
  }
  if (key !== undefined && (typeof key !== "string" || key.length > 1024)) {
    return "key must be a string of at most 1024 characters";
  }
  if (timeoutMs !== undefined && !(Number.isInteger(timeoutMs) && (timeoutMs as number) > 0 && (timeoutMs as number) <= MAX_TIMEOUT_MS)) {
    return `timeoutMs must be an integer from 1 to ${MAX_TIMEOUT_MS}`;
  }
  if (priority !== undefined && !(Number.isInteger(priority) && Math.abs(priority as number) <= 1_000_000)) {
    return "priority must be an integer from -1000000 to 1000000";
  }
  return undefined;
}

function isRequestId(id: unknown): id is RequestId {
  return (typeof id === "string" && id.length <= MAX_ID_LENGTH) || (typeof id === "number" && Number.isFinite(id));
}

function bad(id: RequestId | null, message: string): ParseResult {
  return { error: new BadRequestError(message), id };
}

/**
 * A reply frame as text, newline included. A result arrives from its node already as
 * JSON text, so it is spliced in rather than parsed and serialised again here.
 */
export function encodeReply(id: RequestId | null, outcome: Outcome): string {
  const host = outcome.meta.host === undefined ? "" : `,"host":${JSON.stringify(outcome.meta.host)}`;
  const meta = `{"node":${outcome.meta.node === null ? "null" : JSON.stringify(outcome.meta.node)},"attempts":${outcome.meta.attempts},"ms":${outcome.meta.ms}${host}}`;
  const idText = JSON.stringify(id);
  if (outcome.ok) return `{"id":${idText},"ok":true,"result":${outcome.json},"meta":${meta}}\n`;
  return `{"id":${idText},"ok":false,"error":${JSON.stringify(outcome.error.toJSON())},"meta":${meta}}\n`;
}

/** An error reply for a frame that never became a request. */
export function encodeError(id: RequestId | null, error: CrewError): string {
  return `{"id":${JSON.stringify(id)},"ok":false,"error":${JSON.stringify(error.toJSON())}}\n`;
}
