/**
 * Every error crew reports, with its stable code. Wire codes (the ones a client can
 * receive) carry the HTTP status they map to; the rest are raised to the embedding
 * program only (bad options, handler modules that fail to load).
 *
 * One base class takes the code; each code gets a named subclass from `defineError`,
 * so `instanceof TimeoutError` and `err.code === "E_TIMEOUT"` both work.
 */

export const WIRE_ERRORS = {
  E_BAD_REQUEST: { status: 400, name: "BadRequestError", message: "bad request" },
  E_UNKNOWN_HANDLER: { status: 404, name: "UnknownHandlerError", message: "no such handler" },
  E_FRAME_TOO_LARGE: { status: 413, name: "FrameTooLargeError", message: "frame over the size limit" },
  E_DUPLICATE_ID: { status: 409, name: "DuplicateIdError", message: "id already in flight on this connection" },
  E_OVERLOADED: { status: 503, name: "OverloadedError", message: "queue full: retry later" },
  E_NO_NODE: { status: 503, name: "NoNodeError", message: "no node can run this handler" },
  E_HANDLER: { status: 500, name: "HandlerError", message: "the handler threw" },
  E_CRASHED: { status: 502, name: "CrashedError", message: "every attempt's node died" },
  E_TIMEOUT: { status: 504, name: "TimeoutError", message: "deadline passed" },
  E_CANCELLED: { status: 499, name: "CancelledError", message: "cancelled by the client" },
  E_SHUTTING_DOWN: { status: 503, name: "ShuttingDownError", message: "the primary is draining" },
  E_IDEMPOTENCY_CONFLICT: { status: 422, name: "IdempotencyConflictError", message: "the idempotency key is in use by a request with another handler or payload" },
  E_UNAVAILABLE: { status: 503, name: "UnavailableError", message: "the shared store cannot be reached: retry later" },
  E_NOT_FOUND: { status: 404, name: "NotFoundError", message: "no such path" },
  E_METHOD_NOT_ALLOWED: { status: 405, name: "MethodNotAllowedError", message: "method not allowed" },
  E_FORBIDDEN: { status: 403, name: "ForbiddenError", message: "forbidden" },
} as const;

export const LOCAL_ERRORS = {
  E_INVALID_OPTION: { name: "InvalidOptionError", message: "invalid option" },
  E_HANDLER_LOAD: { name: "HandlerLoadError", message: "a handler module failed to load" },
  E_CHECKPOINT_TOO_LARGE: { name: "CheckpointTooLargeError", message: "checkpoint over the size limit" },
  E_CONNECTION: { name: "ConnectionError", message: "connection to the cluster lost" },
  E_JOURNAL: { name: "JournalError", message: "the journal cannot be used" },
} as const;

export type WireErrorCode = keyof typeof WIRE_ERRORS;
export type LocalErrorCode = keyof typeof LOCAL_ERRORS;
export type ErrorCode = WireErrorCode | LocalErrorCode;

/**
 * What a handler's thrown error said about itself, forwarded in an E_HANDLER reply's
 * `error.cause`: its `name`, its own string `code`, JSON `details`, and an HTTP `status`
 * in 400–499 that the HTTP front answers with.
 */
export interface WireCause {
  name: string;
  code?: string;
  details?: unknown;
  status?: number;
}

/** The JSON shape of an error on the wire (TCP frames, HTTP bodies, node messages). */
export interface WireError {
  code: string;
  message: string;
  /** E_HANDLER only: what the handler's error said about itself. */
  cause?: WireCause;
}

export class CrewError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message?: string, options?: ErrorOptions) {
    super(message ?? defaultMessage(code), options);
    this.code = code;
  }

  override get name(): string {
    return errorName(this.code);
  }

  /**
   * The HTTP status of a wire code; 500 for local codes, which never reach a client. An
   * E_HANDLER whose handler set a `status` in 400–499 answers with that one.
   */
  get status(): number {
    const chosen = this.code === "E_HANDLER" ? wireCause(this.cause)?.status : undefined;
    if (chosen !== undefined) return chosen;
    return isWireCode(this.code) ? WIRE_ERRORS[this.code].status : 500;
  }

  toJSON(): WireError {
    const cause = this.code === "E_HANDLER" ? wireCause(this.cause) : undefined;
    return cause ? { code: this.code, message: this.message, cause } : { code: this.code, message: this.message };
  }
}

type CrewErrorClass<C extends ErrorCode> = new (message?: string, options?: ErrorOptions) => CrewError & {
  readonly code: C;
};

function defineError<C extends ErrorCode>(code: C): CrewErrorClass<C> {
  const cls = class extends CrewError {
    constructor(message?: string, options?: ErrorOptions) {
      super(code, message, options);
    }
  };
  Object.defineProperty(cls, "name", { value: errorName(code) });
  return cls as unknown as CrewErrorClass<C>;
}

export const BadRequestError = defineError("E_BAD_REQUEST");
export const UnknownHandlerError = defineError("E_UNKNOWN_HANDLER");
export const FrameTooLargeError = defineError("E_FRAME_TOO_LARGE");
export const DuplicateIdError = defineError("E_DUPLICATE_ID");
export const OverloadedError = defineError("E_OVERLOADED");
export const NoNodeError = defineError("E_NO_NODE");
export const HandlerError = defineError("E_HANDLER");
export const CrashedError = defineError("E_CRASHED");
export const TimeoutError = defineError("E_TIMEOUT");
export const CancelledError = defineError("E_CANCELLED");
export const ShuttingDownError = defineError("E_SHUTTING_DOWN");
export const IdempotencyConflictError = defineError("E_IDEMPOTENCY_CONFLICT");
export const UnavailableError = defineError("E_UNAVAILABLE");
export const NotFoundError = defineError("E_NOT_FOUND");
export const MethodNotAllowedError = defineError("E_METHOD_NOT_ALLOWED");
export const ForbiddenError = defineError("E_FORBIDDEN");
export const InvalidOptionError = defineError("E_INVALID_OPTION");
export const HandlerLoadError = defineError("E_HANDLER_LOAD");
export const CheckpointTooLargeError = defineError("E_CHECKPOINT_TOO_LARGE");
export const ConnectionError = defineError("E_CONNECTION");
export const JournalError = defineError("E_JOURNAL");

const CLASSES: Record<ErrorCode, CrewErrorClass<ErrorCode>> = {
  E_BAD_REQUEST: BadRequestError,
  E_UNKNOWN_HANDLER: UnknownHandlerError,
  E_FRAME_TOO_LARGE: FrameTooLargeError,
  E_DUPLICATE_ID: DuplicateIdError,
  E_OVERLOADED: OverloadedError,
  E_NO_NODE: NoNodeError,
  E_HANDLER: HandlerError,
  E_CRASHED: CrashedError,
  E_TIMEOUT: TimeoutError,
  E_CANCELLED: CancelledError,
  E_SHUTTING_DOWN: ShuttingDownError,
  E_IDEMPOTENCY_CONFLICT: IdempotencyConflictError,
  E_UNAVAILABLE: UnavailableError,
  E_NOT_FOUND: NotFoundError,
  E_METHOD_NOT_ALLOWED: MethodNotAllowedError,
  E_FORBIDDEN: ForbiddenError,
  E_INVALID_OPTION: InvalidOptionError,
  E_HANDLER_LOAD: HandlerLoadError,
  E_CHECKPOINT_TOO_LARGE: CheckpointTooLargeError,
  E_CONNECTION: ConnectionError,
  E_JOURNAL: JournalError,
};

export function isWireCode(code: string): code is WireErrorCode {
  return Object.hasOwn(WIRE_ERRORS, code);
}

export function isErrorCode(code: string): code is ErrorCode {
  return Object.hasOwn(CLASSES, code);
}

/** Rebuilds the coded error class from a wire error (client side, node messages), with its cause. */
export function errorFromWire(err: WireError): CrewError {
  const code = isErrorCode(err.code) ? err.code : "E_HANDLER";
  const cause = wireCause(err.cause);
  return cause ? new CLASSES[code](err.message, { cause }) : new CLASSES[code](err.message);
}

/** A cause as it came off the wire, or undefined when it is not one (an Error, a local cause). */
function wireCause(cause: unknown): WireCause | undefined {
  if (typeof cause !== "object" || cause === null || cause instanceof Error) return undefined;
  const c = cause as WireCause;
  if (typeof c.name !== "string") return undefined;
  const out: WireCause = { name: c.name };
  if (typeof c.code === "string") out.code = c.code;
  if (c.details !== undefined) out.details = c.details;
  if (Number.isInteger(c.status) && (c.status as number) >= 400 && (c.status as number) <= 499) out.status = c.status;
  return out;
}

function errorName(code: ErrorCode): string {
  return isWireCode(code) ? WIRE_ERRORS[code].name : LOCAL_ERRORS[code].name;
}

function defaultMessage(code: ErrorCode): string {
  return isWireCode(code) ? WIRE_ERRORS[code].message : LOCAL_ERRORS[code].message;
}
