/**
 * The process that hosts the thread nodes. A V8 out-of-memory abort in a thread can end
 * the whole process whatever its resourceLimits say (nodejs/node#47224: one large array
 * filled by index, or a long run of push(), aborts with "Reached heap limit" instead of
 * terminating the thread); hosted here, it ends this process, never the primary. Each
 * thread node is the same piscina thread as before (nodes/thread-transport.ts), relayed
 * to the primary over IPC in batches.
 */
import type { FromHost, ToHost } from "../nodes/host-messages.js";
import { createThreadTransport, type ThreadTransport } from "../nodes/thread-transport.js";
import { dieWithPrimary, endGroup } from "./watchdog.js";

if (!process.send) {
  console.error("crew: host-entry is started by the primary, not by hand");
  process.exit(2);
}
dieWithPrimary();

const send = process.send.bind(process);
const nodes = new Map<number, ThreadTransport>();
let outbox: FromHost[] = [];

/**
 * What every thread says in one turn of this process's event loop leaves as one IPC
 * message: setImmediate, not a microtask, as each thread's batch arrives as its own task.
 */
function post(msg: FromHost): void {
  if (outbox.push(msg) === 1) {
    setImmediate(() => {
      const batch = outbox;
      outbox = [];
      if (process.connected) send(batch);
    });
  }
}

function open(k: number, msg: Extract<ToHost, { t: "open" }>): void {
  let first = true;
  const transport = createThreadTransport({
    init: msg.init,
    memoryMb: msg.memoryMb,
    events: {
      onMessages: (msgs) => {
        if (!first) return post({ t: "msgs", k, msgs });
        first = false;
        post({ t: "msgs", k, msgs, threadId: transport.threadId });
      },
      onExit: (info) => {
        nodes.delete(k);
        post({ t: "exit", k, info, ran: transport.runningNow() });
      },
    },
  });
  nodes.set(k, transport);
}

process.on("message", (batch: ToHost[]) => {
  for (const msg of batch) {
    if (msg.t === "open") open(msg.k, msg);
    else if (msg.t === "post") nodes.get(msg.k)?.post(msg.msgs);
    else nodes.get(msg.k)?.kill();
  }
});
// The primary is gone (or closed our channel): nobody is left to answer to. The programs
// the threads started go too (this process leads their group).
process.on("disconnect", () => endGroup("SIGKILL"));
