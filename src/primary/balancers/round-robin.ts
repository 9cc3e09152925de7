/**
 * round-robin: take the candidates in id order, one after another (see rotation.ts for
 * why the cursor is an id).
 */
import type { Balancer, NodeView, PickRequest } from "./balancer.js";
import { Rotation } from "./rotation.js";

export class RoundRobinBalancer implements Balancer {
  readonly name = "round-robin" as const;
  readonly affinity = false;
  readonly #rotation = new Rotation();

  pick(_request: PickRequest, nodes: readonly NodeView[]): NodeView {
    return this.#rotation.pick(nodes);
  }
}
