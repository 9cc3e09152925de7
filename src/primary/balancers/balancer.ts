/**
 * A balancer picks the node for one attempt. It is a small object chosen once at
 * start; the dispatcher hands it only nodes that are up and allowed to run the
 * handler, so no balancer ever sees a node that is starting, dead or being replaced.
 */
import type { NodeKind } from "../../nodes/messages.js";

/** What a balancer may read of a node. */
export interface NodeView {
  readonly id: string;
  readonly kind: NodeKind;
  /** Attempts running on the node now. */
  readonly inFlight: number;
  /** How many attempts the node may run at once (--node-concurrency). */
  readonly capacity: number;
}

/** What a balancer may read of the request being placed. */
export interface PickRequest {
  readonly handler: string;
  readonly key: string | undefined;
}

export interface Balancer {
  readonly name: BalancerName;
  /**
   * false (most balancers): `nodes` holds only nodes that can take the attempt now, never
   * empty, and pick must return one of them: nodes with a free slot (inFlight < capacity)
   * or, while every node is busy, nodes that may hold a short attempt ahead (pipelining).
   * true (hash): `nodes` holds every up node allowed to run the request, busy or not, and
   * pick may return a busy one; the request then waits for that node.
   */
  readonly affinity: boolean;
  pick(request: PickRequest, nodes: readonly NodeView[]): NodeView;
  /** Called when a node goes down or comes back, for balancers that keep per-node state. */
  nodesChanged?(nodes: readonly NodeView[]): void;
}

export const BALANCER_NAMES = ["least-outstanding", "round-robin", "random", "p2c", "weighted", "hash"] as const;
export type BalancerName = (typeof BALANCER_NAMES)[number];

export interface BalancerOptions {
  /** Uniform in [0, 1): Math.random by default, seeded in tests. */
  random: () => number;
  /** For `weighted`: weight by node id ("t0") or kind prefix ("t", "p"); a node id wins over its kind. Default 1. */
  weights: Readonly<Record<string, number>>;
}
