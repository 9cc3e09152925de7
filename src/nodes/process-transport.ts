/**
 * A process node: a child_process.fork of node-runtime/process-entry.js in its own process
 * group, talking JSON over IPC (the 'advanced' serialisation is ~2.5× slower for the
 * small objects crew sends), its output relayed into the primary's log (see child.ts).
 */
import { fileURLToPath } from "node:url";
import { forkNodeProcess, onEnded, processExit } from "./child.js";
import { isNodeBatch, type ToNode } from "./messages.js";
import type { ExitInfo, NodeTransport, TransportOptions } from "./transport.js";

const CHANNEL_LOST_GRACE_MS = 1000;
const ENTRY = fileURLToPath(new URL("../node-runtime/process-entry.js", import.meta.url));

export function createProcessTransport({ init, memoryMb, frozenMs, events, log }: TransportOptions): NodeTransport {
  const node = forkNodeProcess(ENTRY, {
    env: { ...process.env, CREW_NODE_INIT: JSON.stringify(init) },
    execArgv: [`--max-old-space-size=${memoryMb}`],
    log,
    source: { node: init.nodeId },
    frozenMs,
  });
  const { child } = node;
  let exited = false;

  const exit = (info: ExitInfo) => {
    if (exited) return;
    exited = true;
    events.onExit(info);
  };

  let warned = false;
  child.on("message", (msgs: unknown) => {
    if (exited) return;
    if (isNodeBatch(msgs)) return events.onMessages(msgs);
    // A handler's own process.send(): dropped, and said once per process (a loop must not flood the log).
    if (!warned) log.warn({ node: init.nodeId, pid: child.pid }, "a message on the node's IPC channel is not crew's: dropped");
    warned = true;
  });
  onEnded(node, (code, signal) => exit(processExit(code, signal, node)));
  child.on("error", () => {
    // A failed send or spawn: the child is no use to us now; 'exit' reports it.
    node.kill();
  });
  child.on("disconnect", () => {
    // The channel also closes as a process dies, just before 'exit' says how. One that
    // lives on without its channel can never answer again: kill it.
    setTimeout(() => {
      if (child.exitCode === null && child.signalCode === null) {
        node.cause = "IPC channel lost";
        node.kill();
      }
    }, CHANNEL_LOST_GRACE_MS).unref();
  });

  return {
    kind: "process",
    get pid() {
      return child.pid ?? -1;
    },
    threadId: null,
    runningNow: () => null,
    // Fork IPC shares no memory: a take-back would wait for the child's event loop, which a long job blocks.
    lookahead: false,
    post(msgs: ToNode[]) {
      if (!exited && child.connected) child.send(msgs);
    },
    kill() {
      if (child.exitCode === null && child.signalCode === null) node.kill();
    },
  };
}
