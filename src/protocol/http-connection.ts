/**
 * What the HTTP front tracks per connection, beside Node's own: a client's FIN (a
 * half-close or a hang-up) and the cancels of its unanswered requests.
 */
import type { ServerResponse } from "node:http";
import type { Socket } from "node:net";
import type { Logger } from "pino";

/** After a client's FIN, a pending response is probed with 102 Processing now and after these delays (see onPeerEnd). */
const PROBE_AGAIN_MS = [100, 1_000];

/**
 * The client sent FIN. On the wire a half-close and a hang-up look the same: a response
 * still to come gets a `102 Processing` first (every HTTP/1.1 client must skip 1xx), so
 * a client that has really gone answers with a reset, which closes the socket and
 * cancels its requests; one that half-closed waits for its responses. A response
 * already streaming (SSE) cannot take a 1xx: its viewer has left, and the socket goes.
 */
export function onPeerEnd(socket: Socket): void {
  const current = (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage;
  if (!current) return; // idle: Node ends the socket
  if (current.headersSent) return void socket.destroy();
  // The reset comes back after the first write, and only a later write sees it: probe
  // again after a round trip on a fast link, and after one on a slow one.
  const probe = (): void => {
    if (!socket.destroyed && !current.headersSent) current.writeProcessing();
  };
  probe();
  for (const ms of PROBE_AGAIN_MS) setTimeout(probe, ms).unref();
}

const cancelsBySocket = new WeakMap<Socket, Set<() => void>>();

/**
 * The cancels of a connection's unanswered requests, run by one 'close' listener per
 * socket; its size is the connection's in-flight count.
 */
export function socketCancels(socket: Socket, log: Logger): Set<() => void> {
  let cancels = cancelsBySocket.get(socket);
  if (!cancels) {
    const set = new Set<() => void>();
    cancelsBySocket.set(socket, set);
    socket.once("close", () => {
      if (set.size > 0) log.debug({ remote: socket.remoteAddress, cancelled: set.size }, "client disconnected: cancelling its requests");
      for (const cancel of set) cancel();
      set.clear();
    });
    cancels = set;
  }
  return cancels;
}
