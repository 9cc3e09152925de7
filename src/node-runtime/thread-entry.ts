/**
 * The piscina task a thread node runs for its whole life. piscina starts the thread,
 * caps its heap (resourceLimits) and terminates it on abort; the node then talks over
 * its own MessagePort, because one piscina task per request costs the primary ~2.5×
 * the CPU of a plain postMessage (measured in issue 2).
 */
import { type MessagePort, receiveMessageOnPort } from "node:worker_threads";
import type { NodeInit, ToNode } from "../nodes/messages.js";
import { NodeRuntime } from "./runtime.js";

export interface ThreadTask {
  port: MessagePort;
  init: NodeInit;
  /** Shared with the primary: the attempts this thread is running (see thread-transport.ts). */
  slots: BigInt64Array;
  /** Shared with whoever answers takes: who won each held attempt, the node or a take (nodes/hand-over.ts). */
  held: BigInt64Array;
}

export default async function serve({ port, init, slots, held }: ThreadTask): Promise<void> {
  const poll = (): void => {
    for (let m = receiveMessageOnPort(port); m; m = receiveMessageOnPort(port)) runtime.receive(m.message as ToNode[]);
  };
  const runtime = new NodeRuntime(init, (msgs) => port.postMessage(msgs), { poll, slots, held });
  port.on("message", (msgs: ToNode[]) => runtime.receive(msgs));
  const first = await runtime.load();
  port.postMessage([first]);
  if (first.t === "ready") await runtime.stopped;
  port.close();
}
