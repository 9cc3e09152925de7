/**
 * least-outstanding (the default): the node with the fewest attempts in flight. Nodes
 * that tie share the load in id order, round-robin style: the cursor is the last picked
 * id, so among equals the next pick is the first id after it (wrapping), which keeps the
 * rotation even however the candidate list is ordered or filtered.
 *
 * `hash` reuses this for requests without a key, where it may also see full nodes: a node
 * with a free slot always wins over a full one, then fewest in flight, then the rotation.
 */
import type { Balancer, NodeView, PickRequest } from "./balancer.js";
import { Rotation } from "./rotation.js";

export class LeastOutstandingBalancer implements Balancer {
  readonly name = "least-outstanding" as const;
  readonly affinity = false;
  readonly #rotation = new Rotation();

  pick(_request: PickRequest, nodes: readonly NodeView[]): NodeView {
    return this.#rotation.pick(nodes, compareLoad);
  }
}

/** Negative when `a` is less loaded than `b`: a free slot first, then fewer in flight. */
function compareLoad(a: NodeView, b: NodeView): number {
  const fullA = a.inFlight >= a.capacity;
  const fullB = b.inFlight >= b.capacity;
  if (fullA !== fullB) return fullA ? 1 : -1;
  return a.inFlight - b.inFlight;
}
