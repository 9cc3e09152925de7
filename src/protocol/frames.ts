/**
 * The frames of DESIGN.md's wire protocol: parsing and checking what a client sends,
 * and the reply shape both receivers and the client share.
 */
import { BadRequestError, type CrewError, FrameTooLargeError, type WireError } from "../errors.js";
import { JsonSyntaxError, MAX_DEPTH, type Members, scanObject } from "./json-scan.js";

export type RequestId = string | number;

export interface RunFrame {
  op: "run";
  id: RequestId;
  handler: string;
  /** The payload as the JSON text it arrived as (the node parses it); undefined when absent. */
  payloadJson: string | undefined;
  key: string | undefined;
  timeoutMs: number | undefined;
  priority: number | undefined;
  /** DESIGN.md's idempotency key: 1 to 256 characters. */
  idempotencyKey: string | undefined;
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
  /** The request's id: unique across primaries and restarts, the same as the handler's ctx.requestId. */
  requestId?: string;
  node: string | null;
  attempts: number;
  ms: number;
  /** The handler's version (its file's content hash) on the node that answered. */
  version?: string;
  /** True on a reply kept from an earlier run with the same idempotency key. */
  replayed?: boolean;
  /** Several hosts (--redis): the host whose node ran the last attempt. */
  host?: string;
}

/**
 * A request's one answer before it is written: its result as JSON text, or its error,
 * with the reply's meta (the dispatcher makes it, each front encodes it).
 */
export type Outcome = { ok: true; json: string; meta: ReplyMeta } | { ok: false; error: CrewError; meta: ReplyMeta };

export type Reply =
  | { id: RequestId | null; ok: true; result: unknown; meta?: ReplyMeta }
  | { id: RequestId | null; ok: false; error: WireError; meta?: ReplyMeta };

export type ParseResult = { frame: RequestFrame } | { error: CrewError; id: RequestId | null };

/** Handler names are plain identifiers: a request names a handler, never a path. */
export const HANDLER_NAME = /^[A-Za-z0-9_][A-Za-z0-9_-]{0,127}$/;

const MAX_ID_LENGTH = 256;

/** The longest idempotency key, in characters (DESIGN.md: 1 to 256). */
export const MAX_IDEMPOTENCY_KEY_LENGTH = 256;

/** The longest delay a Node.js timer holds; setTimeout turns a longer one into 1 ms. */
export const MAX_TIMEOUT_MS = 2 ** 31 - 1;

/**
 * Reads a frame's envelope without building its payload (see json-scan.ts): the fields
 * are parsed, the payload is kept as JSON text. A numeric id is taken only when it is a
 * safe integer written the way JSON writes it back, so every reply echoes its id
 * exactly as sent (12345678901234567890, 1e-999, 1.0 and -0 are refused).
 */
export function parseFrame(line: string): ParseResult {
  const members: Members = new Map();
  const field = (name: string): unknown => {
    const span = members.get(name);
    if (span === undefined) return undefined;
    return span.plain ? line.slice(span.start + 1, span.end - 1) : JSON.parse(line.slice(span.start, span.end));
  };
  try {
    scanObject(line, members);
  } catch (err) {
    if (!(err instanceof JsonSyntaxError)) throw err;
    const id = members.has("id") && isRequestId(field("id"), line, members) ? (field("id") as RequestId) : null;
    if (err.kind === "nesting") {
      const where = err.member === "payload" ? "the payload cannot be sent to a node" : `field ${JSON.stringify(err.member)} of the frame`;
      return bad(id, `${where}: nested deeper than ${MAX_DEPTH}`);
    }
    // Valid JSON that is not an object ([1, 2], "text") is not called invalid JSON.
    return bad(null, err.kind === "not-an-object" ? err.message : `frame is not valid JSON: ${err.message}`);
  }
  const id = field("id");
  if (!isRequestId(id, line, members)) {
    return bad(null, `id must be a string of at most ${MAX_ID_LENGTH} characters or an integer from -(2^53 - 1) to 2^53 - 1 written plainly: other numbers would not come back as sent`);
  }
  const op = field("op") ?? "run";
  switch (op) {
    case "run":
      return parseRun(field, members.get("payload"), line, id);
    case "cancel":
      return { frame: { op: "cancel", id } };
    case "ping":
      return { frame: { op: "ping", id } };
    default:
      return bad(id, `unknown op ${JSON.stringify(op)}: expected "run", "cancel" or "ping"`);
  }
}

function parseRun(field: (name: string) => unknown, payload: { start: number; end: number } | undefined, line: string, id: RequestId): ParseResult {
  const handler = field("handler");
  if (typeof handler !== "string") return bad(id, "handler must be a string");
  const key = field("key");
  const timeoutMs = field("timeoutMs");
  const priority = field("priority");
  const idempotencyKey = field("idempotencyKey");
  const invalid = checkRunFields(handler, key, timeoutMs, priority, idempotencyKey);
  if (invalid) return bad(id, invalid.message);
  return {
    frame: {
      op: "run",
      id,
      handler,
      payloadJson: payload === undefined ? undefined : line.slice(payload.start, payload.end),
      key: key as string | undefined,
      timeoutMs: timeoutMs as number | undefined,
      priority: priority as number | undefined,
      idempotencyKey: idempotencyKey as string | undefined,
      bytes: line.length,
    },
  };
}

/** The refusal of a TCP frame or an HTTP body over `maxFrameBytes` (bytes), naming the option. */
export function frameTooLarge(what: "frame" | "body", maxFrameBytes: number): CrewError {
  return new FrameTooLargeError(`${what} over the limit of ${maxFrameBytes} bytes (maxFrameBytes, --max-frame-bytes)`);
}

/** A run request's fields that checkRunFields checks, by their frame names. */
export type RunField = "handler" | "key" | "timeoutMs" | "priority" | "idempotencyKey";

/**
 * Checks the fields of a run request (a frame, an HTTP request's path and headers,
 * cluster.run's options), so every front agrees; returns the first wrong field and what
 * is wrong with it, or undefined. Positional: it runs for every request, and allocates
 * only for a refusal.
 */
export function checkRunFields(handler: string, key: unknown, timeoutMs: unknown, priority: unknown, idempotencyKey: unknown): { field: RunField; message: string } | undefined {
  if (!HANDLER_NAME.test(handler)) {
    return { field: "handler", message: `handler must be a handler name (letters, digits, "_" and "-"), not ${JSON.stringify(handler.slice(0, 64))}` };
  }
  if (key !== undefined && (typeof key !== "string" || key.length > 1024)) {
    return { field: "key", message: "key must be a string of at most 1024 characters" };
  }
  if (timeoutMs !== undefined && !(Number.isInteger(timeoutMs) && (timeoutMs as number) > 0 && (timeoutMs as number) <= MAX_TIMEOUT_MS)) {
    return { field: "timeoutMs", message: `timeoutMs must be an integer from 1 to ${MAX_TIMEOUT_MS}` };
  }
  if (priority !== undefined && !(Number.isInteger(priority) && Math.abs(priority as number) <= 1_000_000)) {
    return { field: "priority", message: "priority must be an integer from -1000000 to 1000000" };
  }
  if (idempotencyKey !== undefined && !(typeof idempotencyKey === "string" && idempotencyKey.length >= 1 && idempotencyKey.length <= MAX_IDEMPOTENCY_KEY_LENGTH)) {
    return { field: "idempotencyKey", message: `idempotencyKey must be a string of 1 to ${MAX_IDEMPOTENCY_KEY_LENGTH} characters` };
  }
  return undefined;
}

/**
 * A string id, or a numeric one that comes back exactly as sent: a safe integer whose
 * text is JSON's own (JSON.parse rounds 12345678901234567890 and 1e-999, and two such
 * ids could collide).
 */
function isRequestId(id: unknown, line: string, members: Members): id is RequestId {
  if (typeof id === "string") return id.length <= MAX_ID_LENGTH;
  if (!Number.isSafeInteger(id)) return false;
  const span = members.get("id")!;
  return line.slice(span.start, span.end) === String(id);
}

function bad(id: RequestId | null, message: string): ParseResult {
  return { error: new BadRequestError(message), id };
}

/**
 * A reply frame as text, newline included. A result arrives from its node already as
 * JSON text, so it is spliced in rather than parsed and serialised again here.
 */
export function encodeReply(id: RequestId | null, outcome: Outcome): string {
  const { requestId, node, attempts, ms, version, replayed, host } = outcome.meta;
  const id0 = requestId === undefined ? "" : `"requestId":${JSON.stringify(requestId)},`;
  const extra = (version === undefined ? "" : `,"version":${JSON.stringify(version)}`) + (replayed ? ',"replayed":true' : "") + (host === undefined ? "" : `,"host":${JSON.stringify(host)}`);
  const meta = `{${id0}"node":${node === null ? "null" : JSON.stringify(node)},"attempts":${attempts},"ms":${ms}${extra}}`;
  const idText = JSON.stringify(id);
  if (outcome.ok) return `{"id":${idText},"ok":true,"result":${outcome.json},"meta":${meta}}\n`;
  return `{"id":${idText},"ok":false,"error":${JSON.stringify(outcome.error.toJSON())},"meta":${meta}}\n`;
}

/** An error reply for a frame that never became a request. */
export function encodeError(id: RequestId | null, error: CrewError): string {
  return `{"id":${JSON.stringify(id)},"ok":false,"error":${JSON.stringify(error.toJSON())}}\n`;
}
