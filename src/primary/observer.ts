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
  /** A hedge (a second attempt of a slow request) started on `node`. */
  hedgeStarted?(job: Job, node: ComputeNode): void;
  /** A hedged request answered: `byHedge` when the hedge answered first. */
  hedgeSettled?(job: Job, byHedge: boolean): void;
  /** Lookahead: a request held ahead in busy `node` was won back before it started there (it waits again, or had answered). */
  takenBack?(job: Job, node: ComputeNode): void;
  checkpointStored?(job: Job): void;
  nodeCrashed?(node: ComputeNode, info: ExitInfo): void;
  nodeRestarted?(node: ComputeNode): void;
  /** A node is killed on purpose (admin endpoint, chaos); its crash and restart follow. */
  nodeKilled?(node: ComputeNode): void;
  /**
   * A rare cluster event with no hook of its own, for the dashboard's timeline: a reload
   * (done or failed), a host taking over a dead host's requests, a node added or stopped.
   */
  event?(event: ClusterEvent): void;
}

export interface ClusterEvent {
  kind: "reload" | "reload-failed" | "takeover" | "node-added" | "node-removed" | "host-joined" | "host-lost";
  /** One line for people: "handlers reloaded (4 nodes replaced)". */
  message: string;
  node?: string;
  host?: string;
  requestId?: string;
}
