/** Where a cluster listens unless told otherwise, and how its addresses are written. */

/** Loopback: listening beyond this machine is a deliberate choice (`--host 0.0.0.0`). */
export const DEFAULT_HOST = "127.0.0.1";
/** TCP, newline-delimited JSON. */
export const DEFAULT_PORT = 7070;
export const DEFAULT_HTTP_PORT = 7071;

/** `host:port`, an IPv6 host in brackets, as URLs and messages want it. */
export function hostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}
