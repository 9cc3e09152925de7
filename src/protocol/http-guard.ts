/**
 * What keeps a web page from driving the cluster through the HTTP front. A page open in
 * a browser on the same machine can send "simple" cross-origin requests (no preflight),
 * and with DNS rebinding (a hostile name resolving to 127.0.0.1) read the answers too.
 * The checks are the ones local dashboards and notebook servers adopted for the same
 * hole (Jupyter's `allow_remote_access`/Host check, Vite's `server.allowedHosts`):
 *
 * - the `Host` header must name a loopback name or address, the address the front
 *   listens on, or one of `allowedHosts` ("*" turns the check off);
 * - an `Origin` header must be this very front (same scheme, host and port as `Host`):
 *   a foreign origin, or the opaque `null`, is refused — there is no CORS;
 * - a POST a browser marks cross-site (`Sec-Fetch-Site` other than same-origin/none)
 *   is refused, so admin endpoints refuse cross-origin calls even from loopback;
 * - `POST /v1/run` bodies must be `Content-Type: application/json` (checked by the
 *   receiver with `isJsonContentType`), which no form or simple request can send.
 */
import type { IncomingMessage } from "node:http";
import { isIP } from "node:net";
import { BadRequestError, type CrewError, ForbiddenError } from "../errors.js";

/** Names that always resolve to this machine (RFC 6761 reserves .localhost). */
function isLoopbackName(host: string): boolean {
  if (host === "localhost" || host.endsWith(".localhost")) return true;
  if (isIP(host) === 4) return host.startsWith("127.");
  return host === "::1" || host.startsWith("::ffff:127.");
}

/** The host part of a Host header or origin authority, lower-cased, IPv6 brackets removed. */
export function hostName(authority: string): string {
  const text = authority.trim().toLowerCase();
  if (text.startsWith("[")) {
    const end = text.indexOf("]");
    return end === -1 ? text : text.slice(1, end);
  }
  const colon = text.lastIndexOf(":");
  return colon === -1 ? text : text.slice(0, colon);
}

export interface GuardOptions {
  /** Extra Host names allowed (lower case); "*" allows any. */
  allowedHosts: readonly string[];
  /** The address the front listens on: its own address is always a valid Host. */
  listenHost: string;
}

/** Refuses a request a browser page could have sent on another site's behalf; null when it may go on. */
export function browserRefusal(req: IncomingMessage, options: GuardOptions): CrewError | null {
  const host = req.headers.host;
  // HTTP/1.0 clients may omit Host (Node refuses an HTTP/1.1 request without one): no browser does.
  if (host !== undefined && !hostAllowed(hostName(host), options)) {
    return new ForbiddenError(`Host ${JSON.stringify(host.slice(0, 200))} is not this server: use a loopback address, or start crew with --allowed-hosts`);
  }
  const origin = req.headers.origin;
  if (origin !== undefined && !sameOrigin(origin, host)) {
    return new ForbiddenError(`requests from origin ${JSON.stringify(origin.slice(0, 200))} are refused: crew answers no other site`);
  }
  const site = req.headers["sec-fetch-site"];
  if (req.method === "POST" && site !== undefined && site !== "same-origin" && site !== "none") {
    return new ForbiddenError(`a ${site} request from a web page is refused`);
  }
  return null;
}

/** A run body must say it is JSON: a form or a `text/plain` "simple" request cannot. */
export function contentTypeRefusal(req: IncomingMessage): CrewError | null {
  const type = req.headers["content-type"];
  const media = type?.split(";")[0]!.trim().toLowerCase();
  if (media === "application/json") return null;
  return new BadRequestError(`POST /v1/run needs Content-Type: application/json${type === undefined ? "" : `, not ${JSON.stringify(type.slice(0, 100))}`}`);
}

function hostAllowed(name: string, options: GuardOptions): boolean {
  if (isLoopbackName(name)) return true;
  if (name === options.listenHost.toLowerCase()) return true;
  return options.allowedHosts.includes("*") || options.allowedHosts.includes(name);
}

/** Whether an Origin header names this front itself: http, and the same authority as Host. */
function sameOrigin(origin: string, host: string | undefined): boolean {
  if (host === undefined) return false;
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return false; // "null" and garbage
  }
  return url.protocol === "http:" && url.host === authority(host);
}

/** A Host header as URL.host writes it (default port dropped, IPv6 bracketed), or null. */
function authority(host: string): string | null {
  try {
    return new URL(`http://${host.trim()}`).host;
  } catch {
    return null;
  }
}
