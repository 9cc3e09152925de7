/**
 * Where a resubmitting Client reconnects: a list of primaries it tries in turn, with an
 * exponential backoff between rounds (from `firstMs`, doubling, capped at `maxMs`, with
 * ±20 % jitter so many clients cut off at once do not come back in step). A connection
 * that opens resets the backoff.
 */
import { InvalidOptionError } from "../errors.js";
import { describeValue } from "../describe-value.js";
import { DEFAULT_HOST } from "./address.js";

export interface Address {
  host: string;
  port: number;
}

/** Parses "host:port", "[v6]:port" or an { host, port } object; throws InvalidOptionError naming the option. */
export function parseAddress(value: string | Address, name: string): Address {
  if (typeof value === "object" && value !== null) return checkAddress(value.host, value.port, name);
  const m = typeof value === "string" ? /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(value) : null;
  if (!m) throw new InvalidOptionError(`${name} must be "host:port" or { host, port }, got ${describeValue(value)}`);
  return checkAddress(m[1] ?? (m[2] || DEFAULT_HOST), Number(m[3]), name);
}

function checkAddress(host: unknown, port: unknown, name: string): Address {
  if (typeof host !== "string" || host === "") throw new InvalidOptionError(`${name}: host must be a non-empty string`);
  if (!Number.isInteger(port) || (port as number) < 1 || (port as number) > 65535) throw new InvalidOptionError(`${name}: port must be an integer from 1 to 65535`);
  return { host, port: port as number };
}

export class Failover {
  readonly #addresses: readonly Address[];
  readonly #firstMs: number;
  readonly #maxMs: number;
  #next = 0;
  #delay: number;

  constructor(addresses: readonly Address[], firstMs = 50, maxMs = 2000) {
    this.#addresses = addresses;
    this.#firstMs = firstMs;
    this.#maxMs = maxMs;
    this.#delay = firstMs;
  }

  /** The address to connect to now; the next call moves on to the next one. */
  current(): Address {
    return this.#addresses[this.#next % this.#addresses.length]!;
  }

  /** The connection to current() was lost or refused: move on, and how long to wait first (ms). */
  failed(): number {
    this.#next++;
    // A full round of refusals waits longer; within a round, the next host is tried at once.
    if (this.#next % this.#addresses.length !== 0) return 0;
    const delay = this.#delay * (0.8 + 0.4 * Math.random());
    this.#delay = Math.min(this.#maxMs, this.#delay * 2);
    return delay;
  }

  /** A connection opened: the next loss starts from the first delay again. */
  opened(): void {
    this.#delay = this.#firstMs;
  }
}
