/**
 * The rotation shared by round-robin and least-outstanding: among the nodes that tie on
 * load (all of them, for round-robin), the next pick is the first id after the last one
 * picked, wrapping to the smallest. The cursor is an id, not an index, so the rotation
 * stays fair when the candidate set changes between picks (nodes fill up, free up, die
 * or come back) and never depends on the candidates' order.
 */
import type { NodeView } from "./balancer.js";

export class Rotation {
  #lastId: string | undefined;

  /** `compareLoad` < 0 when its first node is less loaded; the rotation breaks its ties. */
  pick(nodes: readonly NodeView[], compareLoad?: (a: NodeView, b: NodeView) => number): NodeView {
    let best = nodes[0] as NodeView;
    let bestWrapped = this.#wrapped(best.id);
    for (let i = 1; i < nodes.length; i++) {
      const node = nodes[i] as NodeView;
      const order = compareLoad ? compareLoad(node, best) : 0;
      if (order > 0) continue;
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

/**
 * Natural order of node ids ("t2" before "t10"), without allocating: digit runs compare
 * by length then digit by digit (numeric order for ids without leading zeros), everything
 * else by char code. A total order, so rotations never depend on the candidates' order.
 * Shared by the balancers that rotate by id; it runs per node per pick.
 */
export function compareIds(a: string, b: string): number {
  if (a === b) return 0;
  // Skip the common prefix, backing up to the start of a digit run it ends inside.
  const shorter = Math.min(a.length, b.length);
  let i = 0;
  while (i < shorter && a.charCodeAt(i) === b.charCodeAt(i)) i++;
  while (i > 0 && isDigit(a.charCodeAt(i - 1))) i--;
  let j = i;
  while (i < a.length && j < b.length) {
    const ca = a.charCodeAt(i);
    const cb = b.charCodeAt(j);
    if (!isDigit(ca) || !isDigit(cb)) {
      if (ca !== cb) return ca - cb;
      i++;
      j++;
      continue;
    }
    let endA = i + 1;
    while (endA < a.length && isDigit(a.charCodeAt(endA))) endA++;
    let endB = j + 1;
    while (endB < b.length && isDigit(b.charCodeAt(endB))) endB++;
    if (endA - i !== endB - j) return endA - i - (endB - j);
    for (; i < endA; i++, j++) {
      if (a.charCodeAt(i) !== b.charCodeAt(j)) return a.charCodeAt(i) - b.charCodeAt(j);
    }
  }
  return a.length - i - (b.length - j);
}

function isDigit(code: number): boolean {
  return code >= 48 && code <= 57;
}
