/** The one check every integer option goes through, at the edge; the message names the option. */
import { InvalidOptionError } from "./errors.js";
import { describeValue } from "./describe-value.js";

export function int(value: unknown, name: string, min: number, max: number): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    throw new InvalidOptionError(`${name} must be an integer from ${min} to ${max}, got ${describeValue(value)}`);
  }
  return value;
}
