/**
 * The messages between the primary and the process that hosts its thread nodes: each
 * carries the key of one hosted node (a fresh key per life of a node), in batches.
 */
import type { FromNode, NodeInit, ToNode } from "./messages.js";
import type { ExitInfo } from "./transport.js";

export type ToHost =
  | { t: "open"; k: number; init: NodeInit; memoryMb: number }
  | { t: "post"; k: number; msgs: ToNode[] }
  | { t: "kill"; k: number };

export type FromHost =
  /** `threadId` rides on the first batch of a node's life. */
  | { t: "msgs"; k: number; msgs: FromNode[]; threadId?: number | null }
  /** `ran`: the attempts the thread was running when it died, read from the shared slots. */
  | { t: "exit"; k: number; info: ExitInfo; ran: number[] };
