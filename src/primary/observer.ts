/**
 * Hooks for whoever watches the cluster (the Prometheus metrics). Every method is
 * optional and called synchronously on the primary's hot path: keep them cheap.
 */
import type { ComputeNode } from "../nodes/compute-node.js";
import type { ExitInfo } from "../nodes/transport.js";
import type { Job, Outcome } from "./job.js";

export interface ClusterObserver {
  /** An attempt starts on a node; `job.attempts` is its number. */
  attemptStarted?(job: Job, node: ComputeNode): void;
  /** A request got its one answer. */
  requestDone?(job: Job, outcome: Outcome): void;
  /** A request refused at the door (bad handler, overloaded, draining …). */
  requestRefused?(handler: string, code: string): void;
  retry?(job: Job, node: ComputeNode): void;
  checkpointStored?(job: Job): void;
  nodeCrashed?(node: ComputeNode, info: ExitInfo): void;
  nodeRestarted?(node: ComputeNode): void;
}
