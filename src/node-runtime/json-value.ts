/**
 * Turns what a handler returns or checkpoints into JSON text, refusing values that
 * JSON.stringify would silently change: a Map or Set becomes `{}`, an Error `{}`,
 * `undefined` or a function disappears (or becomes `null` in an array), NaN and ±Infinity
 * become `null`. A client would get `ok: true` with data lost, or a retry would resume
 * from a state that is not the one saved. Objects with a `toJSON` method (Date, Buffer,
 * user classes) chose their own encoding and are taken as they encode.
 */

/** A value JSON cannot carry unchanged: the message names the type and where it was. */
export class NotJsonError extends TypeError {}

const ROOT = { result: "result", checkpoint: "state" } as const;
const PREFIX = { result: "result must be JSON", checkpoint: "checkpoint state must be JSON" } as const;

/**
 * JSON text of what a handler returned (`result`) or saved (`checkpoint`), checked:
 * `result must be JSON: result.items[3] is a Map: JSON would turn it into {}`. A handler
 * that returns nothing answers `null`; an object property that is `undefined` is left
 * out, as JSON does (reading it still gives `undefined`).
 *
 * @throws NotJsonError (a TypeError) for a value JSON would change, a cycle, or a BigInt.
 */
export function toJson(value: unknown, what: "result" | "checkpoint"): string {
  if (value === undefined && what === "result") return "null";
  if (value === undefined || typeof value === "function" || typeof value === "symbol") {
    throw new NotJsonError(`${what === "result" ? "result" : "checkpoint state"} must be a JSON value`);
  }
  const problem = findChange(value, ROOT[what], new Set());
  if (problem) throw new NotJsonError(`${PREFIX[what]}: ${problem}`);
  try {
    return JSON.stringify(value);
  } catch (err) {
    // A structure deeper than the serialiser's stack, or a toJSON that throws.
    throw new NotJsonError(`${PREFIX[what]}: ${(err as Error).message}`);
  }
}

/** Where `value` stops being JSON, as a message, or null when JSON carries it unchanged. */
export function findChange(value: unknown, path: string, ancestors: Set<object>): string | null {
  switch (typeof value) {
    case "string":
    case "boolean":
      return null;
    case "number":
      return Number.isFinite(value) ? null : `${path} is ${value}: JSON would turn it into null`;
    case "undefined":
      return `${path} is undefined: JSON would turn it into null`;
    case "function":
      return `${path} is a function: JSON would drop it`;
    case "symbol":
      return `${path} is a symbol: JSON would drop it`;
    case "bigint":
      return `${path} is a BigInt: JSON cannot encode it (send it as a string)`;
  }
  if (value === null) return null;
  const obj = value as Record<string, unknown>;
  if (typeof obj.toJSON === "function") return null;
  const lossy = lossyType(obj);
  if (lossy) return `${path} is ${lossy}: JSON would turn it into {}`;
  if (ancestors.has(obj)) return `${path} refers back to an enclosing object (a circular structure): JSON cannot encode it`;
  ancestors.add(obj);
  try {
    if (Array.isArray(obj)) {
      for (let i = 0; i < obj.length; i++) {
        const found = findChange(obj[i], `${path}[${i}]`, ancestors);
        if (found) return found;
      }
    } else {
      for (const key of Object.keys(obj)) {
        const v = obj[key];
        if (v === undefined) continue; // left out, and read back as undefined: nothing changes
        const found = findChange(v, `${path}${propertyPath(key)}`, ancestors);
        if (found) return found;
      }
    }
  } finally {
    ancestors.delete(obj);
  }
  return null;
}

/** The name of a built-in whose contents JSON does not see, or null. */
function lossyType(obj: object): string | null {
  if (obj instanceof Map) return "a Map";
  if (obj instanceof Set) return "a Set";
  if (obj instanceof WeakMap || obj instanceof WeakSet) return `a ${obj.constructor.name}`;
  if (obj instanceof Error) return `an Error (${obj.name})`;
  if (obj instanceof RegExp) return "a RegExp";
  if (obj instanceof Promise) return "a Promise (await it first)";
  if (ArrayBuffer.isView(obj)) return `a ${obj.constructor.name}`;
  if (obj instanceof ArrayBuffer || obj instanceof SharedArrayBuffer) return `an ${obj.constructor.name}`;
  return null;
}

const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;

function propertyPath(key: string): string {
  return IDENTIFIER.test(key) ? `.${key}` : `[${JSON.stringify(key)}]`;
}
