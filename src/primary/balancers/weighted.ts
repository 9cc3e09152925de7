/**
 * weighted: smooth weighted round-robin, as nginx does it
 * (https://github.com/nginx/nginx/commit/52327e0627f49dbda1e8db695e63a4b0af4448b1).
 * Each node keeps a current weight; on every pick each candidate's current weight grows
 * by its weight, the largest wins and gives back the candidates' total. Over a cycle
 * every node is picked in proportion to its weight, and the picks are interleaved
 * (5:1:1 gives a a b a c a a, not a a a a a b c).
 *
 * Only candidates take part in a pick, so a full node neither gains nor loses credit
 * while it is full. A node of weight 0 is picked only when no candidate weighs more;
 * those picks rotate in id order.
 */
import type { Balancer, BalancerOptions, NodeView, PickRequest } from "./balancer.js";
import { compareIds, Rotation } from "./rotation.js";
import type { NodeKind } from "../../nodes/messages.js";
import { InvalidOptionError } from "../../errors.js";

const KIND_PREFIX: Record<NodeKind, string> = { thread: "t", process: "p" };

export class WeightedBalancer implements Balancer {
  readonly name = "weighted" as const;
  readonly affinity = false;
  readonly #weights: Readonly<Record<string, number>>;
  /** Per node id: its weight (fixed for an id) and current weight; a node that comes back starts from 0. */
  readonly #state = new Map<string, { readonly weight: number; current: number }>();
  readonly #zeroWeight = new Rotation();

  constructor(weights: BalancerOptions["weights"]) {
    for (const [key, weight] of Object.entries(weights)) {
      if (!Number.isFinite(weight) || weight < 0) {
        throw new InvalidOptionError(`weights.${key} must be a finite number >= 0, got ${String(weight)}`);
      }
    }
    this.#weights = weights;
  }

  pick(request: PickRequest, nodes: readonly NodeView[]): NodeView {
    let best: NodeView | undefined;
    let bestState: { current: number } | undefined;
    let total = 0;
    for (const node of nodes) {
      let state = this.#state.get(node.id);
      if (state === undefined) {
        state = { weight: this.weightOf(node), current: 0 };
        this.#state.set(node.id, state);
      }
      if (state.weight <= 0) continue;
      state.current += state.weight;
      total += state.weight;
      if (
        best === undefined ||
        bestState === undefined ||
        state.current > bestState.current ||
        (state.current === bestState.current && compareIds(node.id, best.id) < 0)
      ) {
        best = node;
        bestState = state;
      }
    }
    if (best === undefined || bestState === undefined) return this.#zeroWeight.pick(nodes);
    bestState.current -= total;
    return best;
  }

  /** A node's weight: by id, else by kind prefix ("t", "p"), else by kind name, else 1. */
  weightOf(node: NodeView): number {
    const weights = this.#weights;
    if (Object.hasOwn(weights, node.id)) return weights[node.id] as number;
    const prefix = KIND_PREFIX[node.kind];
    if (Object.hasOwn(weights, prefix)) return weights[prefix] as number;
    if (Object.hasOwn(weights, node.kind)) return weights[node.kind] as number;
    return 1;
  }

  /** Forget the credit of nodes that are gone, so replaced nodes do not pile up state. */
  nodesChanged(nodes: readonly NodeView[]): void {
    const up = new Set(nodes.map((node) => node.id));
    for (const id of this.#state.keys()) {
      if (!up.has(id)) this.#state.delete(id);
    }
  }
}
