/**
 * p2c (power of two choices): draw two distinct candidates at random and take the one
 * with fewer attempts in flight (the first drawn on a tie). Nearly as even as
 * least-outstanding, but without every primary-side pick herding onto the same node.
 * https://www.eecs.harvard.edu/~michaelm/postscripts/mythesis.pdf
 */
import type { Balancer, NodeView, PickRequest } from "./balancer.js";
import { randomIndex } from "./random.js";

export class P2cBalancer implements Balancer {
  readonly name = "p2c" as const;
  readonly affinity = false;
  readonly #random: () => number;

  constructor(random: () => number) {
    this.#random = random;
  }

  pick(_request: PickRequest, nodes: readonly NodeView[]): NodeView {
    const i = randomIndex(this.#random, nodes.length);
    const first = nodes[i] as NodeView;
    if (nodes.length < 2) return first;
    // Draw the second from the other n - 1 slots so the two are always distinct.
    let j = randomIndex(this.#random, nodes.length - 1);
    if (j >= i) j++;
    const second = nodes[j] as NodeView;
    return second.inFlight < first.inFlight ? second : first;
  }
}
