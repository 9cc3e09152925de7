/**
 * The balancers, one per file, chosen once at start by name (`--balancer`). See
 * docs/balancers.md for what each does and when to pick it.
 */
import { BALANCER_NAMES, type Balancer, type BalancerName, type BalancerOptions } from "./balancer.js";
import { HashBalancer } from "./hash.js";
import { LeastOutstandingBalancer } from "./least-outstanding.js";
import { P2cBalancer } from "./p2c.js";
import { RandomBalancer } from "./random.js";
import { RoundRobinBalancer } from "./round-robin.js";
import { WeightedBalancer } from "./weighted.js";
import { InvalidOptionError } from "../../errors.js";

export { BALANCER_NAMES } from "./balancer.js";
export type { Balancer, BalancerName, BalancerOptions, NodeView, PickRequest } from "./balancer.js";
export { seededRandom } from "./seeded-random.js";

export function createBalancer(name: BalancerName, options: BalancerOptions): Balancer {
  switch (name) {
    case "least-outstanding":
      return new LeastOutstandingBalancer();
    case "round-robin":
      return new RoundRobinBalancer();
    case "random":
      return new RandomBalancer(options.random);
    case "p2c":
      return new P2cBalancer(options.random);
    case "weighted":
      return new WeightedBalancer(options.weights);
    case "hash":
      return new HashBalancer();
    default:
      // Unreachable for typed callers; guards names that came from JavaScript or JSON.
      throw new InvalidOptionError(`balancer must be one of ${BALANCER_NAMES.join(", ")}, got ${String(name)}`);
  }
}

const WEIGHTS_MESSAGE = "weights must look like t=1,p=3 or t0=2,p1=0.5 (node kind or id = a number >= 0)";
const WEIGHT_KEY = /^[A-Za-z][A-Za-z0-9_-]*$/;
const WEIGHT_VALUE = /^(?:\d+(?:\.\d*)?|\.\d+)$/;

/**
 * Parses `--weights`: comma-separated `key=weight` pairs, where a key is a node id
 * ("t0"), a kind prefix ("t", "p") or a kind ("thread", "process"), and a weight is a
 * plain decimal number >= 0. Each key at most once.
 */
export function parseWeights(spec: string): Record<string, number> {
  const weights: Record<string, number> = {};
  for (const entry of spec.split(",")) {
    const eq = entry.indexOf("=");
    const key = entry.slice(0, eq).trim();
    const value = entry.slice(eq + 1).trim();
    if (eq < 0 || !WEIGHT_KEY.test(key) || !WEIGHT_VALUE.test(value) || Object.hasOwn(weights, key)) {
      throw new InvalidOptionError(`${WEIGHTS_MESSAGE}; got "${spec}"`);
    }
    weights[key] = Number(value);
  }
  return weights;
}
