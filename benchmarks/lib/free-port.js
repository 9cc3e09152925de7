import { createServer } from "node:net";

/** A TCP port free on loopback right now (the OS picks it; it may be taken again later). */
export async function freePort() {
  const server = createServer().listen(0, "127.0.0.1");
  await new Promise((resolve) => server.once("listening", resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}
