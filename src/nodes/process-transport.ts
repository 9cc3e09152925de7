/**
 * A process node: a child_process.fork of node-runtime/process-entry.js, talking JSON
 * over IPC (the 'advanced' serialisation is ~2.5× slower for the small objects crew sends).
 */
import { fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { FromNode, ToNode } from "./messages.js";
import type { ExitInfo, NodeTransport, TransportOptions } from "./transport.js";

const CHANNEL_LOST_GRACE_MS = 1000;
const ENTRY = fileURLToPath(new URL("../node-runtime/process-entry.js", import.meta.url));

export function createProcessTransport({ init, memoryMb, events }: TransportOptions): NodeTransport {
  const child = fork(ENTRY, [], {
    env: { ...process.env, CREW_NODE_INIT: JSON.stringify(init) },
    execArgv: [`--max-old-space-size=${memoryMb}`],
    serialization: "json",
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  let exited = false;
  let channelLost = false;

  const exit = (info: ExitInfo) => {
    if (exited) return;
    exited = true;
    events.onExit(info);
  };

  child.on("message", (msgs: FromNode[]) => {
    if (!exited) events.onMessages(msgs);
  });
  // 'close', not 'exit': it comes after the IPC channel has delivered its last messages.
  child.on("close", (code, signal) => exit(processExit(code, signal, channelLost)));
  child.on("error", () => {
    // A failed send or spawn: the child is no use to us now; 'exit' reports it.
    child.kill("SIGKILL");
  });
  child.on("disconnect", () => {
    // The channel also closes as a process dies, just before 'exit' says how. One that
    // lives on without its channel can never answer again: kill it.
    setTimeout(() => {
      if (child.exitCode === null && child.signalCode === null) {
        channelLost = true;
        child.kill("SIGKILL");
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
    post(msgs: ToNode[]) {
      if (!exited && child.connected) child.send(msgs);
    },
    kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    },
  };
}

function processExit(code: number | null, signal: NodeJS.Signals | null, channelLost: boolean): ExitInfo {
  if (channelLost) return { code, signal, reason: "IPC channel lost" };
  if (signal) return { code, signal, reason: `killed by ${signal}` };
  return { code, signal, reason: `exited with code ${code}` };
}
