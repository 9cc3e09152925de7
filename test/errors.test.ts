/**
 * The errors module as a table: every code in WIRE_ERRORS and LOCAL_ERRORS has its
 * exported class, with its name, code, HTTP status, a default message, JSON shape, and a
 * lossless round trip through errorFromWire.
 */
import { describe, expect, it } from "vitest";
import * as crew from "crew";
import { CrewError, errorFromWire, LOCAL_ERRORS, WIRE_ERRORS } from "crew";

type ErrorClass = new (message?: string, options?: ErrorOptions) => CrewError;

/** The class exported under a table entry's name. */
function classOf(name: string): ErrorClass {
  const cls = (crew as Record<string, unknown>)[name];
  expect(cls, `crew exports ${name}`).toBeTypeOf("function");
  return cls as ErrorClass;
}

// DESIGN.md's table, written out again so that a changed status or a lost code fails here.
const DESIGN_STATUS: Record<string, number> = {
  E_BAD_REQUEST: 400,
  E_UNKNOWN_HANDLER: 404,
  E_FRAME_TOO_LARGE: 413,
  E_DUPLICATE_ID: 409,
  E_OVERLOADED: 503,
  E_NO_NODE: 503,
  E_HANDLER: 500,
  E_CRASHED: 502,
  E_TIMEOUT: 504,
  E_CANCELLED: 499,
  E_SHUTTING_DOWN: 503,
  E_IDEMPOTENCY_CONFLICT: 422,
  E_UNAVAILABLE: 503,
  E_NOT_FOUND: 404,
  E_METHOD_NOT_ALLOWED: 405,
  E_FORBIDDEN: 403,
};

const wire = Object.entries(WIRE_ERRORS).map(([code, e]) => [code, e.name, e.status] as const);
const local = Object.entries(LOCAL_ERRORS).map(([code, e]) => [code, e.name] as const);

describe("the tables", () => {
  it("WIRE_ERRORS holds exactly DESIGN.md's codes with their HTTP statuses", () => {
    expect(Object.fromEntries(wire.map(([code, , status]) => [code, status]))).toEqual(DESIGN_STATUS);
  });

  it("no code is both a wire and a local error, and every class name is unique", () => {
    const codes = [...wire.map(([c]) => c), ...local.map(([c]) => c)];
    const names = [...wire.map(([, n]) => n), ...local.map(([, n]) => n)];
    expect(new Set(codes).size).toBe(codes.length);
    expect(new Set(names).size).toBe(names.length);
    expect(LOCAL_ERRORS).toHaveProperty("E_INVALID_OPTION");
    expect(LOCAL_ERRORS).toHaveProperty("E_HANDLER_LOAD");
  });
});

describe.each(wire)("wire error %s", (code, name, status) => {
  const Cls = classOf(name);

  it(`${name}: name, code, status ${status}, instanceof CrewError and Error`, () => {
    const err = new Cls("what happened");
    expect(err).toBeInstanceOf(Cls);
    expect(err).toBeInstanceOf(CrewError);
    expect(err).toBeInstanceOf(Error);
    expect(Cls.name).toBe(name);
    expect(err.name).toBe(name);
    expect(err.code).toBe(code);
    expect(err.status).toBe(status);
    expect(err.message).toBe("what happened");
    expect(String(err)).toBe(`${name}: what happened`);
    expect(err.stack).toContain(name);
  });

  it(`${name}: a default message, and the cause kept`, () => {
    const cause = new Error("root");
    const err = new Cls(undefined, { cause });
    expect(err.message).toBe(WIRE_ERRORS[code as keyof typeof WIRE_ERRORS].message);
    expect(err.message.length).toBeGreaterThan(0);
    expect(err.cause).toBe(cause);
  });

  it(`${name}: toJSON is { code, message }, and errorFromWire rebuilds the same class`, () => {
    const err = new Cls("over the wire");
    expect(err.toJSON()).toEqual({ code, message: "over the wire" });
    expect(JSON.parse(JSON.stringify(err))).toEqual({ code, message: "over the wire" });
    const back = errorFromWire(JSON.parse(JSON.stringify(err)));
    expect(back).toBeInstanceOf(Cls);
    expect(back).toMatchObject({ code, name, message: "over the wire", status });
  });
});

describe.each(local)("local error %s", (code, name) => {
  const Cls = classOf(name);

  it(`${name}: name, code, instanceof CrewError, status 500 (never on the wire)`, () => {
    const err = new Cls("local trouble");
    expect(err).toBeInstanceOf(Cls);
    expect(err).toBeInstanceOf(CrewError);
    expect(Cls.name).toBe(name);
    expect(err.name).toBe(name);
    expect(err.code).toBe(code);
    expect(err.status).toBe(500);
    expect(new Cls().message).toBe(LOCAL_ERRORS[code as keyof typeof LOCAL_ERRORS].message);
  });

  it(`${name}: toJSON and errorFromWire round trip`, () => {
    const back = errorFromWire(new Cls("local trouble").toJSON());
    expect(back).toBeInstanceOf(Cls);
    expect(back).toMatchObject({ code, message: "local trouble" });
  });
});

describe("errorFromWire with a code it does not know", () => {
  it("falls back to a HandlerError keeping the message", () => {
    const err = errorFromWire({ code: "E_FROM_THE_FUTURE", message: "new thing" });
    expect(err).toBeInstanceOf(crew.HandlerError);
    expect(err).toMatchObject({ code: "E_HANDLER", message: "new thing" });
  });

  it("does not mistake inherited property names for codes", () => {
    expect(errorFromWire({ code: "toString", message: "x" }).code).toBe("E_HANDLER");
    expect(errorFromWire({ code: "__proto__", message: "x" }).code).toBe("E_HANDLER");
  });
});

describe("classes are distinct", () => {
  it("one code's class is not an instance of another's", () => {
    const timeout = new crew.TimeoutError();
    expect(timeout).not.toBeInstanceOf(crew.CancelledError);
    expect(timeout).not.toBeInstanceOf(crew.HandlerError);
    expect(new crew.CancelledError()).not.toBeInstanceOf(crew.TimeoutError);
  });
});
