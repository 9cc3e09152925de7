import { describe, expect, it } from "vitest";
import {
  BALANCER_NAMES,
  createBalancer,
  parseWeights,
  seededRandom,
  type Balancer,
  type BalancerName,
  type NodeView,
} from "../dist/primary/balancers/index.js";
import { InvalidOptionError } from "../dist/errors.js";

function node(id: string, inFlight = 0, capacity = 1000): NodeView {
  return { id, kind: id.startsWith("p") ? "process" : "thread", inFlight, capacity };
}

function balancer(name: BalancerName, weights: Record<string, number> = {}, seed = 42): Balancer {
  return createBalancer(name, { random: seededRandom(seed), weights });
}

const NO_KEY = { handler: "echo", key: undefined };

function pickIds(b: Balancer, nodes: readonly NodeView[], count: number): string[] {
  const ids: string[] = [];
  for (let i = 0; i < count; i++) ids.push(b.pick(NO_KEY, nodes).id);
  return ids;
}

function counts(ids: readonly string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const id of ids) out[id] = (out[id] ?? 0) + 1;
  return out;
}

function thrownBy(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error("expected a throw");
}

describe("createBalancer", () => {
  it("builds every named balancer, with affinity only for hash", () => {
    for (const name of BALANCER_NAMES) {
      const b = balancer(name);
      expect(b.name).toBe(name);
      expect(b.affinity).toBe(name === "hash");
    }
  });

  it("rejects an unknown name with E_INVALID_OPTION", () => {
    const err = thrownBy(() => createBalancer("fastest" as BalancerName, { random: Math.random, weights: {} }));
    expect(err).toBeInstanceOf(InvalidOptionError);
    expect((err as InstanceType<typeof InvalidOptionError>).code).toBe("E_INVALID_OPTION");
    expect((err as Error).message).toMatch(/least-outstanding/);
  });
});

describe("seededRandom", () => {
  it("repeats its sequence for a seed, differs across seeds, stays in [0, 1)", () => {
    const a = seededRandom(7);
    const b = seededRandom(7);
    const c = seededRandom(8);
    const seqA = Array.from({ length: 1000 }, a);
    expect(Array.from({ length: 1000 }, b)).toEqual(seqA);
    expect(Array.from({ length: 1000 }, c)).not.toEqual(seqA);
    expect(seqA.every((x) => x >= 0 && x < 1)).toBe(true);
    const mean = seqA.reduce((s, x) => s + x, 0) / seqA.length;
    expect(mean).toBeGreaterThan(0.45);
    expect(mean).toBeLessThan(0.55);
  });
});

describe("least-outstanding", () => {
  it("picks the node with the fewest in flight", () => {
    const b = balancer("least-outstanding");
    const nodes = [node("t0", 3), node("t1", 1), node("t2", 2)];
    expect(pickIds(b, nodes, 5)).toEqual(["t1", "t1", "t1", "t1", "t1"]);
  });

  it("rotates ties in id order, skipping busier nodes", () => {
    const b = balancer("least-outstanding");
    const nodes = [node("t0"), node("t1"), node("t2"), node("t3", 5)];
    expect(pickIds(b, nodes, 6)).toEqual(["t0", "t1", "t2", "t0", "t1", "t2"]);
  });

  it("shares ties evenly whatever order the candidates arrive in", () => {
    const b = balancer("least-outstanding");
    const forward = [node("t0"), node("t1"), node("t2")];
    const backward = [...forward].reverse();
    const ids: string[] = [];
    for (let i = 0; i < 300; i++) ids.push(b.pick(NO_KEY, i % 2 === 0 ? forward : backward).id);
    expect(counts(ids)).toEqual({ t0: 100, t1: 100, t2: 100 });
  });
});

describe("round-robin", () => {
  it("gives every node the same number of picks, in natural id order", () => {
    const b = balancer("round-robin");
    const nodes = [node("t10"), node("t2"), node("t1")];
    expect(pickIds(b, nodes, 3)).toEqual(["t1", "t2", "t10"]);
    expect(counts(pickIds(b, nodes, 300))).toEqual({ t1: 100, t2: 100, t10: 100 });
  });

  it("keeps its place when the candidate set changes", () => {
    const b = balancer("round-robin");
    const all = [node("t0"), node("t1"), node("t2"), node("t3")];
    expect(b.pick(NO_KEY, all).id).toBe("t0");
    expect(b.pick(NO_KEY, all).id).toBe("t1");
    // t2 is full: the next id after t1 among the candidates is t3.
    expect(b.pick(NO_KEY, [all[0]!, all[3]!]).id).toBe("t3");
    expect(b.pick(NO_KEY, all).id).toBe("t0");
    // The last picked node (t0) disappears: carry on after it.
    expect(b.pick(NO_KEY, [all[1]!, all[2]!]).id).toBe("t1");
    expect(b.pick(NO_KEY, all).id).toBe("t2");
  });
});

describe("random", () => {
  it("spreads picks uniformly (within 5% over 30k picks, seeded)", () => {
    const b = balancer("random");
    const c = counts(pickIds(b, [node("t0"), node("t1"), node("p0")], 30_000));
    for (const id of ["t0", "t1", "p0"]) {
      expect(c[id]).toBeGreaterThan(9_500);
      expect(c[id]).toBeLessThan(10_500);
    }
  });

  it("is deterministic for a seed and never runs off the end", () => {
    const nodes = [node("t0"), node("t1"), node("t2"), node("t3")];
    expect(pickIds(balancer("random", {}, 5), nodes, 200)).toEqual(pickIds(balancer("random", {}, 5), nodes, 200));
    const edge = createBalancer("random", { random: () => 1, weights: {} });
    expect(edge.pick(NO_KEY, nodes).id).toBe("t3");
  });
});

describe("p2c", () => {
  it("spreads picks evenly over equally loaded nodes (within 5% over 30k picks)", () => {
    const c = counts(pickIds(balancer("p2c"), [node("t0"), node("t1"), node("t2")], 30_000));
    for (const id of ["t0", "t1", "t2"]) {
      expect(c[id]).toBeGreaterThan(9_500);
      expect(c[id]).toBeLessThan(10_500);
    }
  });

  it("prefers less loaded nodes: shares 1/2, 1/3, 1/6, 0 for loads 0, 1, 2, 3", () => {
    const nodes = [node("t0", 0), node("t1", 1), node("t2", 2), node("t3", 3)];
    const total = 60_000;
    const c = counts(pickIds(balancer("p2c"), nodes, total));
    expect((c.t0 ?? 0) / total).toBeCloseTo(1 / 2, 1);
    expect((c.t1 ?? 0) / total).toBeCloseTo(1 / 3, 1);
    expect((c.t2 ?? 0) / total).toBeCloseTo(1 / 6, 1);
    expect(c.t3).toBeUndefined();
  });

  it("draws two distinct nodes, so of two the less loaded always wins", () => {
    const b = balancer("p2c");
    expect(new Set(pickIds(b, [node("t0", 5), node("t1", 0)], 1_000))).toEqual(new Set(["t1"]));
    expect(pickIds(b, [node("p0", 9)], 3)).toEqual(["p0", "p0", "p0"]);
  });
});

describe("weighted", () => {
  const fleet = [node("t0"), node("t1"), node("p0"), node("p1")];

  it("weights by kind prefix: t=1,p=3 gives exact 1:1:3:3 counts", () => {
    const b = balancer("weighted", parseWeights("t=1,p=3"));
    expect(counts(pickIds(b, fleet, 800))).toEqual({ t0: 100, t1: 100, p0: 300, p1: 300 });
  });

  it("weights by node id, with unlisted nodes at 1", () => {
    const b = balancer("weighted", parseWeights("t0=2,p1=0.5"));
    expect(counts(pickIds(b, fleet, 900))).toEqual({ t0: 400, t1: 200, p0: 200, p1: 100 });
  });

  it("lets a node id win over its kind, and accepts kind names", () => {
    const byId = balancer("weighted", parseWeights("t=1,t0=3"));
    expect(counts(pickIds(byId, [node("t0"), node("t1")], 400))).toEqual({ t0: 300, t1: 100 });
    const byKind = balancer("weighted", { process: 2 });
    expect(counts(pickIds(byKind, [node("t0"), node("p0")], 300))).toEqual({ t0: 100, p0: 200 });
  });

  it("interleaves picks smoothly (5:1:1 gives a a b a c a a)", () => {
    const b = balancer("weighted", { a: 5 });
    expect(pickIds(b, [node("a"), node("b"), node("c")], 7).join(" ")).toBe("a a b a c a a");
  });

  it("never picks a weight-0 node unless nothing heavier is a candidate", () => {
    const b = balancer("weighted", parseWeights("p=0"));
    expect(new Set(pickIds(b, fleet, 100))).toEqual(new Set(["t0", "t1"]));
    expect(pickIds(b, [node("p0")], 2)).toEqual(["p0", "p0"]);
    // All candidates weigh 0: they take turns.
    const zeros = balancer("weighted", parseWeights("p=0"));
    expect(pickIds(zeros, [node("p0"), node("p1")], 4)).toEqual(["p0", "p1", "p0", "p1"]);
  });

  it("freezes a full node's credit and keeps proportions among the candidates", () => {
    const b = balancer("weighted", parseWeights("t0=2"));
    const all = [node("t0"), node("t1"), node("p0")];
    expect(counts(pickIds(b, all, 400))).toEqual({ t0: 200, t1: 100, p0: 100 });
    // t1 is full for these picks: t0 and p0 share 2:1.
    expect(counts(pickIds(b, [all[0]!, all[2]!], 300))).toEqual({ t0: 200, p0: 100 });
    expect(counts(pickIds(b, all, 400))).toEqual({ t0: 200, t1: 100, p0: 100 });
  });

  it("rejects negative or non-finite weights in options", () => {
    for (const bad of [-1, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(thrownBy(() => balancer("weighted", { t: bad }))).toBeInstanceOf(InvalidOptionError);
    }
  });
});

describe("parseWeights", () => {
  it("parses kinds, ids, decimals and spaces", () => {
    expect(parseWeights("t=1,p=3")).toEqual({ t: 1, p: 3 });
    expect(parseWeights("t0=2,p1=0.5")).toEqual({ t0: 2, p1: 0.5 });
    expect(parseWeights(" t = 1 , thread=.25,process=0 ")).toEqual({ t: 1, thread: 0.25, process: 0 });
  });

  it.each(["", "t", "t=", "=1", "t=-1", "t=abc", "t=1,", "t=1,,p=2", "t=1,t=2", "t=Infinity", "t=1e3", "0t=1", "__proto__=1", "t=1;p=2"])(
    "rejects %j with E_INVALID_OPTION",
    (spec) => {
      const err = thrownBy(() => parseWeights(spec));
      expect(err).toBeInstanceOf(InvalidOptionError);
      expect((err as Error).message).toMatch(/^weights must look like t=1,p=3 or t0=2/);
    },
  );
});

describe("hash", () => {
  const four = [node("t0"), node("t1"), node("t2"), node("t3")];
  const KEYS = Array.from({ length: 10_000 }, (_, i) => `user-${i}`);

  function place(b: Balancer, nodes: readonly NodeView[]): string[] {
    return KEYS.map((key) => b.pick({ handler: "echo", key }, nodes).id);
  }

  it("sends the same key to the same node, whatever the order or load", () => {
    const b = balancer("hash");
    const first = b.pick({ handler: "echo", key: "order-17" }, four).id;
    const shuffled = [four[2]!, four[0]!, four[3]!, four[1]!];
    const loaded = four.map((n) => node(n.id, 1000, 1000));
    for (let i = 0; i < 50; i++) {
      expect(b.pick({ handler: "echo", key: "order-17" }, i % 2 ? shuffled : loaded).id).toBe(first);
    }
    expect(balancer("hash", {}, 99).pick({ handler: "echo", key: "order-17" }, four).id).toBe(first);
  });

  it("spreads 10k keys over 4 nodes within 10% of even", () => {
    const c = counts(place(balancer("hash"), four));
    expect(Object.keys(c).sort()).toEqual(["t0", "t1", "t2", "t3"]);
    for (const n of Object.values(c)) {
      expect(n).toBeGreaterThan(2_250);
      expect(n).toBeLessThan(2_750);
    }
  });

  it("moves only the lost node's keys (about 1/4), spread over the rest, and brings them home", () => {
    const b = balancer("hash");
    const before = place(b, four);
    const without = place(
      b,
      four.filter((n) => n.id !== "t1"),
    );
    const movedTo: string[] = [];
    KEYS.forEach((_, i) => {
      if (before[i] === "t1") movedTo.push(without[i]!);
      else expect(without[i]).toBe(before[i]);
    });
    expect(movedTo.length / KEYS.length).toBeGreaterThan(0.2);
    expect(movedTo.length / KEYS.length).toBeLessThan(0.3);
    expect(movedTo).not.toContain("t1");
    const spread = counts(movedTo);
    for (const id of ["t0", "t2", "t3"]) expect(spread[id]).toBeGreaterThan(movedTo.length / 5);
    expect(place(b, four)).toEqual(before);
  });

  it("places keyless requests least-outstanding among free nodes, else least loaded", () => {
    const b = balancer("hash");
    // t1 has the fewest in flight but is full; t2 is the least loaded with room.
    const some = [node("t0", 2, 4), node("t1", 1, 1), node("t2", 1, 4)];
    expect(pickIds(b, some, 3)).toEqual(["t2", "t2", "t2"]);
    const allFull = [node("t0", 4, 4), node("t1", 2, 2), node("t2", 3, 3)];
    expect(b.pick(NO_KEY, allFull).id).toBe("t1");
    const even = [node("t0", 1, 4), node("t1", 1, 4)];
    expect(pickIds(b, even, 4)).toEqual(["t0", "t1", "t0", "t1"]);
  });
});
