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
import { compareIds } from "./round-robin.js";

export class LeastOutstandingBalancer implements Balancer {
  readonly name = "least-outstanding" as const;
  readonly affinity = false;
  #lastId: string | undefined;

  pick(_request: PickRequest, nodes: readonly NodeView[]): NodeView {
    let best = nodes[0] as NodeView;
    let bestWrapped = this.#wrapped(best.id);
    for (let i = 1; i < nodes.length; i++) {
      const node = nodes[i] as NodeView;
      const order = compareLoad(node, best);
      if (order > 0) continue;
      // Less loaded wins outright; on a load tie, ids past the last pick beat wrapped ones.
      const wrapped = this.#wrapped(node.id);
      if (order < 0 || (wrapped !== bestWrapped ? bestWrapped : compareIds(node.id, best.id) < 0)) {
        best = node;
        bestWrapped = wrapped;
      }
    }
    this.#lastId = best.id;
    return best;
  }

  /** True for ids at or before the last pick: among equals they come after the ones past it. */
  #wrapped(id: string): boolean {
    return this.#lastId !== undefined && compareIds(id, this.#lastId) <= 0;
  }
}

/** Negative when `a` is less loaded than `b`: a free slot first, then fewer in flight. */
function compareLoad(a: NodeView, b: NodeView): number {
  const fullA = a.inFlight >= a.capacity;
  const fullB = b.inFlight >= b.capacity;
  if (fullA !== fullB) return fullA ? 1 : -1;
  return a.inFlight - b.inFlight;
}
