/**
 * hash: rendezvous (highest random weight) hashing on the request's key. Every node
 * scores the key and the highest score wins, so a key stays on its node while that node
 * is up; when a node goes, only its keys move (each to its own runner-up); when a node
 * with the same id comes back, exactly those keys return to it. No ring or table to
 * rebuild: a pick is one hash of the key plus one integer mix per node.
 * https://en.wikipedia.org/wiki/Rendezvous_hashing
 *
 * The dispatcher hands this balancer busy nodes too (affinity: true): a keyed request
 * may wait for its node rather than lose its placement. A request without a key is not
 * tied to any node and goes to the least-outstanding node with a free slot.
 */
import type { Balancer, NodeView, PickRequest } from "./balancer.js";
import { LeastOutstandingBalancer } from "./least-outstanding.js";
import { compareIds } from "./rotation.js";

const NODE_SEED = 0x5bd1e995;

export class HashBalancer implements Balancer {
  readonly name = "hash" as const;
  readonly affinity = true;
  readonly #noKey = new LeastOutstandingBalancer();

  pick(request: PickRequest, nodes: readonly NodeView[]): NodeView {
    if (request.key === undefined) return this.#noKey.pick(request, nodes);
    const keyHash = hashString(request.key, 0);
    let best = nodes[0] as NodeView;
    let bestScore = score(keyHash, best.id);
    for (let i = 1; i < nodes.length; i++) {
      const node = nodes[i] as NodeView;
      const s = score(keyHash, node.id);
      // Ties (1 in 2^32 per pair) go to the smaller id, so the list order never matters.
      if (s > bestScore || (s === bestScore && compareIds(node.id, best.id) < 0)) {
        best = node;
        bestScore = s;
      }
    }
    return best;
  }
}

/** The weight of `nodeId` for a key: a bijective mix of both hashes, uniform per key. */
function score(keyHash: number, nodeId: string): number {
  return fmix32(keyHash ^ hashString(nodeId, NODE_SEED));
}

/** 32-bit FNV-1a over UTF-16 code units, then murmur3's finaliser for avalanche. */
function hashString(s: string, seed: number): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return fmix32(h);
}

/** murmur3 fmix32: every input bit flips each output bit with probability about 1/2. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
