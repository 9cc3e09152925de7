/**
 * Placement on real clusters: every balancer's choices, hash affinity across a node's
 * death and return, isolation and prefer, and per-node concurrency. Unit tests of the
 * balancers themselves are in balancers.test.ts; these check what the dispatcher does
 * with them, counting nodes from each reply's meta.node.
 */
import { describe, expect, it } from "vitest";
import { NoNodeError } from "crew";
import { nodeEvent, nodeState, placeAll, tally, useFixtures } from "./fixtures/placement/cluster.js";

const fx = useFixtures();

/** Every node always has a free slot, so each choice is the balancer's and not availability's. */
const ROOM = { nodeConcurrency: 1000 } as const;

describe("balancers on a real cluster", () => {
  it("round-robin takes the nodes in id order, exactly evenly", async () => {
    const cluster = await fx.cluster({ threads: 3, balancer: "round-robin", ...ROOM });
    const nodes = await placeAll(cluster, 30);
    expect(nodes.slice(0, 6)).toEqual(["t0", "t1", "t2", "t0", "t1", "t2"]);
    expect(tally(nodes)).toEqual({ t0: 10, t1: 10, t2: 10 });
    // The rotation carries on across batches.
    expect(await placeAll(cluster, 2)).toEqual(["t0", "t1"]);
  });

  it("weighted t=1,p=3 gives exactly 1:1:3 over whole cycles, interleaved", async () => {
    const cluster = await fx.cluster({ threads: 2, processes: 1, balancer: "weighted", weights: "t=1,p=3", ...ROOM });
    const nodes = await placeAll(cluster, 50);
    expect(tally(nodes)).toEqual({ t0: 10, t1: 10, p0: 30 });
    // Smooth: every cycle of 5 picks holds each node its share.
    for (let cycle = 0; cycle < 10; cycle++) {
      expect(tally(nodes.slice(cycle * 5, cycle * 5 + 5))).toEqual({ t0: 1, t1: 1, p0: 3 });
    }
    expect(nodes.slice(0, 5)).not.toEqual(["p0", "p0", "p0", "t0", "t1"]);
  });

  for (const balancer of ["random", "p2c"] as const) {
    it(`${balancer} with a seed spreads within tolerance and repeats its sequence`, async () => {
      const run = async (seed: number) => {
        const cluster = await fx.cluster({ threads: 3, balancer, seed, ...ROOM });
        try {
          return await placeAll(cluster, 300);
        } finally {
          await cluster.close();
        }
      };
      const first = await run(7);
      const counts = tally(first);
      expect(Object.keys(counts).sort()).toEqual(["t0", "t1", "t2"]);
      // Stated tolerance: random within ±30% of the fair 100 (3.5 standard deviations);
      // p2c, which sees in-flight counts, within ±5%.
      const tolerance = balancer === "random" ? 30 : 5;
      for (const count of Object.values(counts)) expect(Math.abs(count - 100)).toBeLessThanOrEqual(tolerance);
      expect(await run(7)).toEqual(first);
      expect(await run(8)).not.toEqual(first);
    });
  }

  it("least-outstanding spreads concurrent requests and sends new ones to the idlest node", async () => {
    const cluster = await fx.cluster({ threads: 3, balancer: "least-outstanding", nodeConcurrency: 10 });
    const gate = await fx.gate();
    const held = Array.from({ length: 6 }, (_, i) => cluster.call("gate", gate.payload(`g${i}`)));
    await gate.entered(6);
    expect(tally(gate.entries.map((e) => e.node))).toEqual({ t0: 2, t1: 2, t2: 2 });
    // Empty t1: it now has 0 in flight against 2 and 2, so it takes the next two.
    const onT1 = gate.entries.filter((e) => e.node === "t1").map((e) => e.tag);
    for (const tag of onT1) gate.release(tag);
    await Promise.all(held.filter((_, i) => onT1.includes(`g${i}`)));
    expect(await placeAll(cluster, 2)).toEqual(["t1", "t1"]);
    gate.open();
    await Promise.all(held);
  });
});

describe("hash on a real cluster", () => {
  const keys = Array.from({ length: 60 }, (_, i) => `user-${i}`);

  it("keeps keys on their node, moves only a dead node's keys, and brings them home", async () => {
    const cluster = await fx.cluster({ threads: 3, balancer: "hash", ...ROOM });
    const home = await placeAll(cluster, keys.length, { keys });
    expect(await placeAll(cluster, keys.length, { keys })).toEqual(home);
    expect(Object.keys(tally(home)).sort()).toEqual(["t0", "t1", "t2"]);

    const victim = home[0]!;
    const crashed = nodeEvent(cluster, "nodeCrashed", victim);
    const restarted = nodeEvent(cluster, "nodeRestarted", victim);
    expect(cluster.killNode(victim)).toBe(true);
    await crashed;
    // Placement happens inside each call, synchronously: the whole batch is placed while
    // the victim is down (a restart needs a new thread's ready message, many turns away).
    expect(nodeState(cluster, victim)).not.toBe("up");
    const whileDown = placeAll(cluster, keys.length, { keys });
    expect(nodeState(cluster, victim)).not.toBe("up");
    const down = await whileDown;
    keys.forEach((key, i) => {
      if (home[i] === victim) expect(down[i], key).not.toBe(victim);
      else expect(down[i], key).toBe(home[i]);
    });

    await restarted;
    expect(nodeState(cluster, victim)).toBe("up");
    expect(await placeAll(cluster, keys.length, { keys })).toEqual(home);
    const status = await cluster.status();
    expect(status.nodes.find((n) => n.id === victim)?.restarts).toBe(1);
  });

  it("a keyed request waits for its busy node instead of spilling to an idle one", async () => {
    const cluster = await fx.cluster({ threads: 2, balancer: "hash" });
    const gate = await fx.gate();
    const holding = cluster.call("gate", gate.payload("hold"), { key: "k" });
    await gate.entered(1);
    const home = gate.entries[0]!.node;
    const keyed = cluster.call("whoami", {}, { key: "k" });
    expect(cluster.queueLength).toBe(1);
    // A request without a key is tied to nothing and runs on the idle node meanwhile.
    const free = await cluster.call("whoami", {});
    expect(free.meta.node).not.toBe(home);
    expect(cluster.queueLength).toBe(1);
    gate.release("hold");
    expect((await keyed).meta.node).toBe(home);
    await holding;
  });
});

describe("isolation and prefer", () => {
  it('runs isolation:"process" handlers only on process nodes, and prefer:"process" ones there while it has room', async () => {
    const cluster = await fx.cluster({ threads: 2, processes: 1, ...ROOM });
    expect(tally(await placeAll(cluster, 12, { handler: "process-only" }))).toEqual({ p0: 12 });
    // Left to least-outstanding these would spread over all three nodes.
    expect(tally(await placeAll(cluster, 12, { handler: "prefer-process" }))).toEqual({ p0: 12 });
    expect(tally(await placeAll(cluster, 12))).toEqual({ t0: 4, t1: 4, p0: 4 });
  });

  it('answers E_NO_NODE at once when no node may run the handler', async () => {
    const cluster = await fx.cluster({ threads: 1 });
    const reply = await cluster.call("process-only", {});
    expect(reply.ok).toBe(false);
    if (reply.ok) return;
    expect(reply.error.code).toBe("E_NO_NODE");
    expect(reply.meta).toEqual({ node: null, attempts: 0, ms: 0 });
    await expect(cluster.run("gate-process", {})).rejects.toBeInstanceOf(NoNodeError);
    expect((await cluster.status()).requests.refused).toBe(2);
  });

  it("prefers a process node with room, falls back to a thread, and never queues process-only work on a thread", async () => {
    const cluster = await fx.cluster({ threads: 1, processes: 1 });
    const gate = await fx.gate();
    expect((await cluster.call("prefer-process", {})).meta.node).toBe("p0");
    // Hold p0: prefer falls back to the thread, process-only waits although t0 is idle.
    const holding = cluster.call("gate-process", gate.payload("hold"));
    await gate.entered(1);
    expect(gate.entries[0]?.node).toBe("p0");
    expect((await cluster.call("prefer-process", {})).meta.node).toBe("t0");
    const waiting = cluster.call("process-only", {});
    expect(cluster.queueLength).toBe(1);
    // The process-only request at the head does not block work a thread can do.
    expect((await cluster.call("whoami", {})).meta.node).toBe("t0");
    expect(cluster.queueLength).toBe(1);
    gate.release("hold");
    expect((await waiting).meta.node).toBe("p0");
    await holding;
  });
});

describe("node concurrency", () => {
  it("runs nodeConcurrency requests at once on one node and queues the next", async () => {
    // Lookahead off: the fifth waits in the primary's queue (with it on, it is held in the
    // node, and lookahead.test.ts checks that it still never runs as a fifth at once).
    const cluster = await fx.cluster({ threads: 1, nodeConcurrency: 4, nodeLookahead: 0 });
    const gate = await fx.gate();
    const calls = Array.from({ length: 5 }, (_, i) => cluster.call("gate", gate.payload(`g${i}`)));
    await gate.entered(4);
    // Four inside the handler at the same time on the same node: the last saw all four.
    expect(gate.entries.map((e) => [e.node, e.entered])).toEqual([
      ["t0", 1],
      ["t0", 2],
      ["t0", 3],
      ["t0", 4],
    ]);
    expect(cluster.queueLength).toBe(1);
    expect((await cluster.status()).nodes[0]?.inFlight).toBe(4);
    expect(gate.entries).toHaveLength(4);
    gate.release(gate.entries[0]!.tag);
    await gate.entered(5);
    expect(gate.entries[4]).toMatchObject({ tag: "g4", node: "t0", entered: 4 });
    gate.open();
    const replies = await Promise.all(calls);
    expect(replies.every((r) => r.ok)).toBe(true);
  });

  it("holds even when short attempts are sent ahead to a busy node (pipelining)", async () => {
    const cluster = await fx.cluster({ threads: 1, nodeConcurrency: 2 });
    let sentAhead = 0;
    cluster.observe({ attemptStarted: (_job, node) => void (node.inFlight >= node.capacity && sentAhead++) });
    // Once overlap is measured as short, the dispatcher sends it ahead to the busy node;
    // the node must still start only two at a time.
    const replies = await Promise.all(Array.from({ length: 300 }, () => cluster.call("overlap", {})));
    expect(sentAhead).toBeGreaterThan(0);
    const most = Math.max(...replies.map((r) => (r.ok ? (r.result as { most: number }).most : Infinity)));
    expect(most).toBe(2);
  });
});
