/**
 * random: a uniform pick among the candidates, from `options.random` (Math.random, or a
 * seeded generator under `--seed` and in tests).
 */
import type { Balancer, NodeView, PickRequest } from "./balancer.js";

export class RandomBalancer implements Balancer {
  readonly name = "random" as const;
  readonly affinity = false;
  readonly #random: () => number;

  constructor(random: () => number) {
    this.#random = random;
  }

  pick(_request: PickRequest, nodes: readonly NodeView[]): NodeView {
    return nodes[randomIndex(this.#random, nodes.length)] as NodeView;
  }
}

/** An index in [0, length); clamped so a generator that returns 1 cannot run off the end. */
export function randomIndex(random: () => number, length: number): number {
  return Math.min(length - 1, Math.floor(random() * length));
}
