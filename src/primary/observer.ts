/**
 * Hooks for whoever watches the cluster (the Prometheus metrics). Every method is
 * optional and called synchronously on the primary's hot path: keep them cheap.
 */
import type { ComputeNode } from "../nodes/compute-node.js";
import type { ExitInfo } from "../nodes/transport.js";
import type { Job, Outcome } from "./job.js";

export interface ClusterObserver {
  /**
   * An attempt is sent to a node; `job.attempts` is its number. `first` is true once per
   * request: a request sent ahead and put back (its node died before starting it) is
   * sent again with the same attempt number.
   */
  attemptStarted?(job: Job, node: ComputeNode, first: boolean): void;
  /** A request got its one answer. */
  requestDone?(job: Job, outcome: Outcome): void;
  /** A request refused at the door (bad handler, overloaded, draining …). */
  requestRefused?(handler: string, code: string): void;
  retry?(job: Job, node: ComputeNode): void;
  checkpointStored?(job: Job): void;
  nodeCrashed?(node: ComputeNode, info: ExitInfo): void;
  nodeRestarted?(node: ComputeNode): void;
}
