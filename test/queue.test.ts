/**
 * WaitQueue, the primary's priority queue: lowest rank first, arrival order (seq) on a
 * tie, O(log n) removal from anywhere. The dispatcher ranks a request
 * `enqueuedAt - priority × priorityAgingMs`; the aging tests below carry that arithmetic
 * exactly, which the end-to-end starvation test in priority.test.ts relies on.
 */
import { describe, expect, it } from "vitest";
import { WaitQueue } from "../dist/primary/queue.js";
import { seededRandom } from "../dist/primary/balancers/index.js";

interface Item {
  rank: number;
  seq: number;
  heapIndex: number;
  name: string;
}

let nextSeq = 1;

function item(name: string, rank: number): Item {
  return { rank, seq: nextSeq++, heapIndex: -1, name };
}

/** The dispatcher's rule: one priority step is worth `agingMs` of waiting. */
function aged(name: string, enqueuedAt: number, priority: number, agingMs: number): Item {
  return item(name, enqueuedAt - priority * agingMs);
}

function popAll(queue: WaitQueue<Item>): string[] {
  const out: string[] = [];
  for (let next = queue.pop(); next; next = queue.pop()) out.push(next.name);
  return out;
}

function filled(items: Item[]): WaitQueue<Item> {
  const queue = new WaitQueue<Item>();
  for (const i of items) queue.push(i);
  return queue;
}

describe("WaitQueue order", () => {
  it("serves the lowest rank first and equal ranks in arrival order", () => {
    const queue = filled([item("c", 3), item("a1", 1), item("b", 2), item("a2", 1), item("z", -5), item("a3", 1)]);
    expect(queue.length).toBe(6);
    expect(queue.peek()?.name).toBe("z");
    expect(popAll(queue)).toEqual(["z", "a1", "a2", "a3", "b", "c"]);
    expect(queue.length).toBe(0);
    expect(queue.peek()).toBeUndefined();
    expect(queue.pop()).toBeUndefined();
  });

  it("keeps arrival order among many equal ranks, whatever else is queued around them", () => {
    const items: Item[] = [];
    for (let i = 0; i < 64; i++) items.push(item(`same${i}`, 7), item(`other${i}`, (i * 37) % 15));
    const sames = popAll(filled(items)).filter((name) => name.startsWith("same"));
    expect(sames).toEqual(Array.from({ length: 64 }, (_, i) => `same${i}`));
  });

  it("ranks higher priority first, FIFO within a priority, when arrivals are close together", () => {
    // Arrivals 1 ms apart with 1000 ms per priority step: priority decides, then arrival.
    const agingMs = 1000;
    const queue = filled([
      aged("p0-a", 0, 0, agingMs),
      aged("p5-a", 1, 5, agingMs),
      aged("p1-a", 2, 1, agingMs),
      aged("p5-b", 3, 5, agingMs),
      aged("p0-b", 4, 0, agingMs),
      aged("p1-b", 5, 1, agingMs),
    ]);
    expect(popAll(queue)).toEqual(["p5-a", "p5-b", "p1-a", "p1-b", "p0-a", "p0-b"]);
  });
});

describe("WaitQueue aging (no starvation)", () => {
  // A low-priority request L enqueued at 0 and a request H, Δp priorities higher, enqueued
  // at t: L runs first exactly when t - Δp·agingMs >= 0, i.e. once L has waited Δp·agingMs.
  // At equality the ranks tie and arrival order (L came first) decides.
  const agingMs = 1;
  const cases: Array<[t: number, first: string]> = [
    [0, "H"],
    [4, "H"],
    [5, "L"], // rank(H) = 5 - 5 = 0 = rank(L): the tie goes to the earlier arrival
    [6, "L"],
    [1000, "L"],
  ];
  for (const [t, first] of cases) {
    it(`priority 0 at 0 ms vs priority 5 at ${t} ms (agingMs 1): ${first} first`, () => {
      const queue = filled([aged("L", 0, 0, agingMs), aged("H", t, 5, agingMs)]);
      expect(queue.pop()?.name).toBe(first);
    });
  }

  it("lets a waiting low-priority request overtake every later high-priority one", () => {
    // One H per ms from 1 ms on, priority 10 over L: H(t) ranks t - 10, L ranks 0, so the
    // H's enqueued before 10 ms go first, then L (tie at 10 ms goes to L), then the rest.
    const queue = filled([aged("L", 0, 0, 1)]);
    for (let t = 1; t <= 20; t++) queue.push(aged(`H${t}`, t, 10, 1));
    const order = popAll(queue);
    expect(order.indexOf("L")).toBe(9);
    expect(order.slice(0, 9)).toEqual(["H1", "H2", "H3", "H4", "H5", "H6", "H7", "H8", "H9"]);
    expect(order.slice(10, 12)).toEqual(["H10", "H11"]);
  });

  it("with agingMs 0 a priority step is worth nothing: plain FIFO", () => {
    const queue = filled([aged("L", 0, 0, 0), aged("H", 1, 1_000_000, 0)]);
    expect(popAll(queue)).toEqual(["L", "H"]);
  });
});

describe("WaitQueue remove and drain", () => {
  it("removes from the middle and keeps the rest in order", () => {
    const items = [5, 1, 4, 2, 3, 0, 6].map((r) => item(`r${r}`, r));
    const queue = filled(items);
    const middle = items.find((i) => i.name === "r3")!;
    expect(queue.remove(middle)).toBe(true);
    expect(middle.heapIndex).toBe(-1);
    expect(queue.remove(middle)).toBe(false); // not queued any more
    expect(popAll(queue)).toEqual(["r0", "r1", "r2", "r4", "r5", "r6"]);
  });

  it("refuses to remove an item that sits in another queue at the same index", () => {
    const a = item("a", 1);
    const b = item("b", 1);
    const qa = filled([a]);
    const qb = filled([b]);
    expect(qb.remove(a)).toBe(false);
    expect(qb.length).toBe(1);
    expect(qa.peek()).toBe(a);
  });

  it("drains everything, marks each item unqueued, and can be refilled", () => {
    const items = [3, 1, 2].map((r) => item(`r${r}`, r));
    const queue = filled(items);
    const drained = queue.drain();
    expect(drained.map((i) => i.name).sort()).toEqual(["r1", "r2", "r3"]);
    expect(queue.length).toBe(0);
    for (const i of items) expect(i.heapIndex).toBe(-1);
    // A retried request is pushed back with its old rank and keeps its place.
    for (const i of drained) queue.push(i);
    expect(popAll(queue)).toEqual(["r1", "r2", "r3"]);
  });
});

describe("WaitQueue against a reference (seeded, many operations)", () => {
  /** The obvious implementation: a list kept sorted by (rank, seq). */
  function referenceOrder(list: Item[]): Item[] {
    return [...list].sort((x, y) => x.rank - y.rank || x.seq - y.seq);
  }

  for (const seed of [1, 2, 3]) {
    it(`agrees on every peek, pop, remove and drain (seed ${seed})`, () => {
      const random = seededRandom(seed);
      const int = (n: number) => Math.floor(random() * n);
      const queue = new WaitQueue<Item>();
      let inQueue: Item[] = [];
      const outside: Item[] = [];
      let removedFromMiddle = 0;
      for (let step = 0; step < 5000; step++) {
        const roll = random();
        if (roll < 0.5 || inQueue.length === 0) {
          // Few distinct ranks, so ties (and FIFO among them) are common.
          const reuse = outside.length > 0 && random() < 0.3;
          const next = reuse ? outside.splice(int(outside.length), 1)[0]! : item(`i${step}`, int(20) - 10);
          queue.push(next);
          inQueue.push(next);
        } else if (roll < 0.7) {
          const top = queue.pop()!;
          expect(top).toBe(referenceOrder(inQueue)[0]);
          inQueue = inQueue.filter((i) => i !== top);
          outside.push(top);
        } else if (roll < 0.95) {
          const victim = inQueue[int(inQueue.length)]!;
          if (referenceOrder(inQueue)[0] !== victim) removedFromMiddle++;
          expect(queue.remove(victim)).toBe(true);
          inQueue = inQueue.filter((i) => i !== victim);
          outside.push(victim);
        } else if (outside.length > 0) {
          expect(queue.remove(outside[int(outside.length)]!)).toBe(false);
        }
        expect(queue.length).toBe(inQueue.length);
        expect(queue.peek()).toBe(referenceOrder(inQueue)[0]);
        if (step % 1000 === 999) {
          const drained = queue.drain();
          expect(new Set(drained)).toEqual(new Set(inQueue));
          expect(drained.every((i) => i.heapIndex === -1)).toBe(true);
          // Refill in a shuffled order: the pops must still come out in reference order.
          for (let i = drained.length - 1; i > 0; i--) {
            const j = int(i + 1);
            [drained[i], drained[j]] = [drained[j]!, drained[i]!];
          }
          for (const i of drained) queue.push(i);
        }
      }
      expect(removedFromMiddle).toBeGreaterThan(500);
      const expected = referenceOrder(inQueue).map((i) => i.name);
      expect(popAll(queue)).toEqual(expected);
    });
  }
});
