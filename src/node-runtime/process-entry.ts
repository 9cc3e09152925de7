/**
 * The main module of a process node, started with child_process.fork. Its NodeInit
 * arrives in the environment, so it can start loading handlers before any IPC round trip.
 */
import type { NodeInit, ToNode } from "../nodes/messages.js";
import { NodeRuntime } from "./runtime.js";
import { dieWithPrimary, endGroup } from "./watchdog.js";

const raw = process.env.CREW_NODE_INIT;
if (!raw || !process.send) {
  console.error("crew: process-entry is started by the primary, not by hand");
  process.exit(2);
}
dieWithPrimary();
const init = JSON.parse(raw) as NodeInit;
const send = process.send.bind(process);

const runtime = new NodeRuntime(init, (msgs) => {
  if (process.connected) send(msgs);
});
process.on("message", (msgs: ToNode[]) => runtime.receive(msgs));
// The primary is gone (or closed our channel): nobody is left to answer to.
// The programs its handlers started are asked to end with it.
process.on("disconnect", () => {
  endGroup("SIGTERM");
  process.exit(0);
});

const first = await runtime.load();
if (first.t === "ready") {
  send([first]);
  await runtime.stopped;
  process.exit(0);
} else {
  // Exit only once the report is on its way: the primary names the file that failed.
  send([first], () => process.exit(1));
}
