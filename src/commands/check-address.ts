/**
 * `crew start` checks its addresses before any node starts: a port in use or a host that
 * is not this machine's is one line naming the flag, not a stack trace after the nodes
 * have loaded. The same words serve a listen() that fails later (a port taken between the
 * check and the listen).
 */
import { createServer } from "node:net";
import { UsageError } from "./usage-error.js";

export interface Address {
  host: string;
  port: number;
  httpPort: number | null;
}

/** Labels of the sources, by key (`--port`, `CREW_PORT`, …); the flag when absent. */
type Labels = Record<string, string | undefined>;

/**
 * Binds and releases each port that is not 0 (0 always finds a free one).
 * @throws UsageError naming the flag (or variable, or config key) at fault.
 */
export async function checkAddressFree(address: Address, labels: Labels): Promise<void> {
  const ports: Array<[port: number, key: "port" | "httpPort"]> = [[address.port, "port"]];
  if (address.httpPort !== null) ports.push([address.httpPort, "httpPort"]);
  for (const [port, key] of ports) {
    const err = await tryListen(address.host, port);
    if (err) throw describeListenError(err, address, key, labels);
  }
}

function tryListen(host: string, port: number): Promise<NodeJS.ErrnoException | null> {
  const server = createServer();
  return new Promise((resolve) => {
    server.once("error", (err: NodeJS.ErrnoException) => resolve(err));
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve(null)));
  });
}

/**
 * A listen error as one line naming the flag: port in use, port not allowed, host not
 * this machine's, host that does not resolve. `key` says which port was being bound
 * (from `err.port` when the caller does not know).
 */
export function describeListenError(err: NodeJS.ErrnoException & { port?: number }, address: Address, key: "port" | "httpPort" | null, labels: Labels): Error {
  const which = key ?? (address.httpPort !== null && err.port === address.httpPort && err.port !== address.port ? "httpPort" : "port");
  const port = which === "port" ? address.port : address.httpPort;
  const portLabel = labels[which] ?? (which === "port" ? "--port" : "--http-port");
  const hostLabel = labels.host ?? "--host";
  const what = `${which === "port" ? "TCP" : "HTTP"} port ${port} on ${address.host}`;
  switch (err.code) {
    case "EADDRINUSE":
      return new UsageError(`${what} is already in use (${portLabel})`);
    case "EACCES":
      return new UsageError(`${what} is not allowed to this user (${portLabel}; ports below 1024 usually need privileges)`);
    case "EADDRNOTAVAIL":
      return new UsageError(`${address.host} is not an address of this machine (${hostLabel})`);
    case "ENOTFOUND":
    case "EAI_AGAIN":
    case "EAI_NONAME":
      return new UsageError(`host ${JSON.stringify(address.host)} does not resolve to an address (${hostLabel})`);
    default:
      return err;
  }
}
