/** The Client's options: what a caller may give, and the checked, filled-in form the Client uses. */
import { type CrewError, InvalidOptionError } from "../errors.js";
import { int } from "../validate.js";
import { DEFAULT_HOST, DEFAULT_PORT } from "./address.js";
import type { ConnectionOptions } from "./connection.js";
import { type Address, parseAddress } from "./failover.js";

export interface ClientOptions {
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 7070. */
  port?: number;
  /** Longest reply line accepted; a longer one drops the connection. Default 64 MiB. */
  maxFrameBytes?: number;
  /** Default 5000. */
  connectTimeoutMs?: number;
  /**
   * Called with the server's E_BAD_REQUEST when it answers with `id: null` (it could not
   * read one of our frames, so no request can be blamed). Ignored when absent. It runs
   * inside the socket's data handler, so it must not throw.
   */
  onProtocolError?: (error: CrewError) => void;
  /**
   * Survive a lost connection: every call gets an idempotency key (unless given), and
   * unanswered calls are sent again, with their keys, after reconnecting. Default false.
   */
  resubmit?: boolean;
  /** Primaries to fail over between ("host:port" or { host, port }); overrides host and port. */
  hosts?: Array<string | Address>;
  /** With resubmit: how long a call without timeoutMs keeps being resent, ms. Default 60000. */
  resubmitTimeoutMs?: number;
}

export interface FilledOptions extends ConnectionOptions {
  onProtocolError: ((error: CrewError) => void) | undefined;
  resubmit: boolean;
  addresses: Address[];
  resubmitTimeoutMs: number;
}

/** Fills the defaults in and checks every option; throws InvalidOptionError naming the option. */
export function fillOptions(options: ClientOptions): FilledOptions {
  const filled: FilledOptions = {
    host: options.host ?? DEFAULT_HOST,
    port: options.port ?? DEFAULT_PORT,
    maxFrameBytes: options.maxFrameBytes ?? 64 * 1024 * 1024,
    connectTimeoutMs: options.connectTimeoutMs ?? 5000,
    onProtocolError: options.onProtocolError,
    resubmit: options.resubmit === true,
    addresses: [],
    resubmitTimeoutMs: options.resubmitTimeoutMs ?? 60_000,
  };
  filled.addresses = options.hosts?.length ? options.hosts.map((h, i) => parseAddress(h, `options.hosts[${i}]`)) : [{ host: filled.host, port: filled.port }];
  int(filled.resubmitTimeoutMs, "options.resubmitTimeoutMs", 1, 2 ** 31 - 1);
  if (typeof filled.host !== "string" || filled.host === "") {
    throw new InvalidOptionError("options.host must be a non-empty string");
  }
  int(filled.port, "options.port", 1, 65535);
  int(filled.maxFrameBytes, "options.maxFrameBytes", 1, Number.MAX_SAFE_INTEGER);
  int(filled.connectTimeoutMs, "options.connectTimeoutMs", 1, 2 ** 31 - 1);
  return filled;
}
