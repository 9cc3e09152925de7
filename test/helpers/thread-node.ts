/**
 * A real thread node as the primary makes one (createThreadTransport: a piscina thread
 * running the node runtime), for tests that talk to it message by message.
 */
import { createThreadTransport, type ThreadTransport } from "../../dist/nodes/thread-transport.js";
import type { FromNode, NodeInit } from "../../dist/nodes/messages.js";
import type { ExitInfo } from "../../dist/nodes/transport.js";

/**
 * Starts a thread node serving `handlers` (name → file), one attempt at a time; resolves
 * once it is ready. `onMessages` hears every batch it sends after `ready`.
 */
export async function startThreadNode(
  handlers: Record<string, string>,
  onMessages: (msgs: FromNode[], transport: ThreadTransport) => void,
  onExit: (info: ExitInfo) => void = () => {},
): Promise<ThreadTransport> {
  const init: NodeInit = { nodeId: "t9", kind: "thread", handlers, logLevel: "silent", maxCheckpointBytes: 1 << 20, maxResultBytes: 1 << 20, concurrency: 1 };
  let ready!: () => void;
  const up = new Promise<void>((resolve) => (ready = resolve));
  const transport: ThreadTransport = createThreadTransport({
    init,
    memoryMb: 64,
    events: {
      onMessages: (msgs: FromNode[]) => {
        if (msgs.some((m) => m.t === "ready")) ready();
        const rest = msgs.filter((m) => m.t !== "ready" && m.t !== "loading");
        if (rest.length > 0) onMessages(rest, transport);
      },
      onExit,
    },
  });
  await up;
  return transport;
}
