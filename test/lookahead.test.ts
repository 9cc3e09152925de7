/**
 * Lookahead on real threads: with both thread nodes busy, a third request is held ahead
 * in one of them. Whoever wins the compare-and-swap on the node's hand-over cell runs it:
 * the holder when it frees first, or, when the other node frees first, that node (the
 * primary takes it back). Each race is repeated many times, for thread nodes in the
 * primary's process (the swap made there) and for thread nodes hosted in a child process
 * (the default threadHost: the host makes the swap on the primary's behalf); every round
 * asserts that each request ran exactly once (counted through a side channel: shared
 * memory the handler increments, or a socket it announces itself on) and answered exactly
 * once, and that nothing is left in flight. Process nodes hold nothing ahead.
 */
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type Cluster, createCluster } from "crew";
import { changed } from "./helpers/atomics.js";
import { Gate, type GateArrival, startCluster } from "./helpers/cluster.js";

const HANDLERS = fileURLToPath(new URL("./fixtures/lookahead", import.meta.url));
const REPEATS = Number(process.env.LOOKAHEAD_REPEATS ?? 30);

type Reply = Awaited<ReturnType<Cluster["call"]>>;
type Tagged = { round: number; idx: number };

/**
 * One round: requests 0 and 1 hold the two nodes until their gates open, request 2 is
 * held ahead. Every round's gates open after each test, so a failed one leaves no node blocked.
 */
interface Round {
  readonly round: number;
  /** Request `idx`'s payload: 0 and 1 wait on gates 0 and 1. */
  payload(idx: number, extra?: Record<string, unknown>): Tagged & Record<string, unknown>;
  /** Resolves once request `idx` is running in a node (its handler counted the run). */
  running(idx: number): Promise<void>;
  open(gate: number): void;
  /** Runs of requests 0, 1 and 2 so far. */
  counts(): number[];
}

let nextRound = 0;
const rounds = new Set<Round>();

/** For block.js in threads of this process: shared memory counts the runs and blocks the thread (synchronously, like a long computation). */
class SharedRound implements Round {
  readonly round = nextRound++;
  readonly runs = new Int32Array(new SharedArrayBuffer(4 * 3));
  readonly gates = [0, 1].map(() => new Int32Array(new SharedArrayBuffer(4)));

  payload(idx: number, extra: Record<string, unknown> = {}): Tagged & Record<string, unknown> {
    const gate = idx < 2 ? { gate: this.gates[idx]!.buffer } : {};
    return { round: this.round, idx, runs: this.runs.buffer, ...gate, ...extra };
  }

  running(idx: number): Promise<void> {
    return changed(this.runs, idx, 0);
  }

  open(gate: number): void {
    Atomics.store(this.gates[gate]!, 0, 1);
    Atomics.notify(this.gates[gate]!, 0);
  }

  counts(): number[] {
    return Array.from(this.runs);
  }
}

/** The test's end of hold.js, for nodes in another process: counts every run it announces, and holds the waiting ones until opened. */
class Runs {
  readonly #counts = new Map<string, number>();
  readonly #blocked = new Map<string, GateArrival>();
  readonly #opened = new Set<string>();
  readonly #waiters = new Map<string, () => void>();

  constructor(readonly gate: Gate) {
    void this.#pump();
  }

  count(key: string): number {
    return this.#counts.get(key) ?? 0;
  }

  running(key: string): Promise<void> {
    if (this.count(key) > 0) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.set(key, resolve));
  }

  /** Lets request `key` finish, and its later attempts pass at once. */
  open(key: string): void {
    this.#opened.add(key);
    this.#blocked.get(key)?.open();
    this.#blocked.delete(key);
  }

  async #pump(): Promise<void> {
    for (;;) {
      const arrival = (await this.gate.arrival()) as GateArrival & Tagged & { wait: boolean };
      const key = `${arrival.round}:${arrival.idx}`;
      this.#counts.set(key, this.count(key) + 1);
      if (!arrival.wait || this.#opened.has(key)) arrival.open();
      else this.#blocked.set(key, arrival);
      this.#waiters.get(key)?.();
      this.#waiters.delete(key);
    }
  }
}

class SocketRound implements Round {
  readonly round = nextRound++;

  constructor(readonly runs: Runs) {}

  payload(idx: number, extra: Record<string, unknown> = {}): Tagged & Record<string, unknown> {
    return { round: this.round, idx, port: this.runs.gate.port, wait: idx < 2, ...extra };
  }

  running(idx: number): Promise<void> {
    return this.runs.running(`${this.round}:${idx}`);
  }

  open(gate: number): void {
    this.runs.open(`${this.round}:${gate}`);
  }

  counts(): number[] {
    return [0, 1, 2].map((idx) => this.runs.count(`${this.round}:${idx}`));
  }
}

describe.each([
  { where: "in the primary's process", threadHost: "primary" as const, handler: "block", newRound: (): Round => new SharedRound() },
  { where: "hosted in a child process", threadHost: "process" as const, handler: "hold", newRound: (runs: Runs): Round => new SocketRound(runs) },
])("lookahead on two thread nodes $where", ({ threadHost, handler, newRound }) => {
  let cluster: Cluster;
  let gate: Gate;
  let runs: Runs;
  /** Per round and request: the nodes its attempts were sent to, whether sent to a busy node, and its answers. */
  const started = new Map<string, Array<{ node: string; busy: boolean }>>();
  const answers = new Map<string, number>();
  /** Requests won back from their holder, and who waits for that. */
  const takenBack = new Set<string>();
  const takeWaiters = new Map<string, () => void>();
  const wonBack = (k: string) => new Promise<void>((resolve) => (takenBack.has(k) ? resolve() : takeWaiters.set(k, resolve)));
  let restarts = 0;
  let onRestart = (): void => {};
  /** Resolves once the nodes have restarted `n` times in all. */
  const restarted = (n: number) => new Promise<void>((resolve) => {
    onRestart = () => restarts >= n && resolve();
    onRestart();
  });
  const key = (p: unknown) => {
    const { round, idx } = p as Tagged;
    return `${round}:${idx}`;
  };
  const round = (): Round => {
    const r = newRound(runs);
    rounds.add(r);
    return r;
  };

  beforeAll(async () => {
    gate = await Gate.open();
    runs = new Runs(gate);
    // Pipelining off: the held request, measured short after a few rounds, would otherwise
    // be pipelined (sent ahead without a hand-over) when it arrives within 1 ms of the others.
    cluster = await createCluster({ handlers: HANDLERS, threads: 2, threadHost, nodePipeline: 0, logLevel: "silent", restartBackoffMs: 1, restartBackoffMaxMs: 5 });
    cluster.observe({
      attemptStarted: (job, node) => {
        const list = started.get(key(job.payload)) ?? [];
        list.push({ node: node.id, busy: node.inFlight >= node.capacity });
        started.set(key(job.payload), list);
      },
      requestDone: (job) => void answers.set(key(job.payload), (answers.get(key(job.payload)) ?? 0) + 1),
      takenBack: (job) => {
        takenBack.add(key(job.payload));
        takeWaiters.get(key(job.payload))?.();
      },
      nodeRestarted: () => {
        restarts++;
        onRestart();
      },
    });
  });
  afterAll(async () => {
    await cluster?.close();
    await gate?.close();
  });
  afterEach(() => {
    for (const r of rounds) [0, 1].forEach((g) => r.open(g));
    rounds.clear();
  });

  /**
   * Starts a round: 0 and 1 running (blocked) on the two nodes, 2 held ahead in one of
   * them. Returns the replies, and which gate blocks the holder and which the other node.
   */
  async function setUp(r: Round, extra: { first?: Record<string, unknown>; held?: Record<string, unknown>; options?: Parameters<Cluster["call"]>[2] } = {}) {
    const first = cluster.call(handler, r.payload(0, extra.first));
    await r.running(0);
    const second = cluster.call(handler, r.payload(1, extra.first));
    await r.running(1);
    const held = cluster.call(handler, r.payload(2, extra.held), extra.options);
    const [a, b, c] = [0, 1, 2].map((idx) => started.get(`${r.round}:${idx}`)!);
    expect(a![0]!.node).not.toBe(b![0]!.node);
    // Sent to a node whose slot was busy: held ahead, not queued in the primary.
    expect(c).toHaveLength(1);
    expect(c![0]!.busy).toBe(true);
    expect(cluster.queueLength).toBe(0);
    const holderGate = c![0]!.node === a![0]!.node ? 0 : 1;
    return { replies: [first, second, held], holder: c![0]!.node, holderGate, otherGate: 1 - holderGate, otherNode: holderGate === 0 ? b![0]!.node : a![0]!.node };
  }

  /** Every request of the round answered exactly once, and the cluster holds nothing. */
  async function settled(r: Round, replies: Array<Promise<Reply>>): Promise<Reply[]> {
    const out = await Promise.all(replies);
    for (let idx = 0; idx < replies.length; idx++) expect(answers.get(`${r.round}:${idx}`)).toBe(1);
    const status = await cluster.status();
    expect(status.requests.active).toBe(0);
    expect(status.queue.length).toBe(0);
    expect(status.nodes.map((n) => n.inFlight)).toEqual([0, 0]);
    return out;
  }

  it(`the other node frees first: the primary takes the held request back and it runs there, once (×${REPEATS})`, async () => {
    for (let i = 0; i < REPEATS; i++) {
      const r = round();
      const { replies, holderGate, otherGate, otherNode } = await setUp(r);
      r.open(otherGate);
      const held = await replies[2]!;
      expect(held).toMatchObject({ ok: true, result: { idx: 2, node: otherNode }, meta: { attempts: 1, node: otherNode } });
      // The holder now frees: it must find the request gone and not run it.
      r.open(holderGate);
      await settled(r, replies);
      expect(r.counts()).toEqual([1, 1, 1]);
    }
  });

  it(`the holder frees first: it starts the held request itself, once (×${REPEATS})`, async () => {
    for (let i = 0; i < REPEATS; i++) {
      const r = round();
      const { replies, holder, holderGate, otherGate } = await setUp(r);
      r.open(holderGate);
      expect(await replies[2]!).toMatchObject({ ok: true, result: { idx: 2, node: holder }, meta: { attempts: 1, node: holder } });
      r.open(otherGate);
      await settled(r, replies);
      expect(r.counts()).toEqual([1, 1, 1]);
      expect(started.get(`${r.round}:2`)).toHaveLength(1); // never taken back
    }
  });

  it(`both nodes free at once, the node's claim racing the primary's take-back: once either way (×${REPEATS * 2})`, async () => {
    for (let i = 0; i < REPEATS * 2; i++) {
      const r = round();
      const { replies } = await setUp(r);
      r.open(0);
      r.open(1);
      const [, , held] = await settled(r, replies);
      expect(held).toMatchObject({ ok: true, meta: { attempts: 1 } });
      expect(r.counts()).toEqual([1, 1, 1]);
    }
  });

  it(`the holder crashes while holding: the held request still runs once, uncharged (×${REPEATS})`, async () => {
    for (let i = 0; i < REPEATS; i++) {
      const r = round();
      const { replies, holderGate, otherGate } = await setUp(r, { first: { exitOnFirst: true } });
      // Alternate: the crash alone, or the crash racing the other node's freeing.
      r.open(holderGate);
      if (i % 2 === 1) r.open(otherGate);
      const held = await replies[2]!;
      expect(held).toMatchObject({ ok: true, meta: { attempts: 1 } });
      r.open(otherGate);
      const out = await settled(r, replies);
      // Both blocked requests die on their first attempt (charged) and answer from their second.
      expect(out[0]).toMatchObject({ ok: true, meta: { attempts: 2 } });
      expect(out[1]).toMatchObject({ ok: true, meta: { attempts: 2 } });
      expect(r.counts()).toEqual([2, 2, 1]);
      // Both nodes back before the next round, which needs two idle nodes.
      await restarted(2 * (i + 1));
    }
  });

  it(`a deadline while held: answered E_TIMEOUT, never run, no node touched (×${REPEATS})`, async () => {
    for (let i = 0; i < REPEATS; i++) {
      const r = round();
      const { replies } = await setUp(r, { options: { timeoutMs: 5 } });
      // Its meta counts the attempt held in the node: the reply does not wait for the take's answer.
      expect(await replies[2]!).toMatchObject({ ok: false, error: { code: "E_TIMEOUT" }, meta: { attempts: 1 } });
      // Won back from its holder (for hosted threads the host's answer crosses IPC; the swap
      // itself was made before the reply, or, hosted, right after): it can no longer start there.
      await wonBack(`${r.round}:2`);
      r.open(0);
      r.open(1);
      await settled(r, replies);
      expect(r.counts()).toEqual([1, 1, 0]);
    }
  });

  it(`a cancel while held: answered E_CANCELLED and never run; or, racing the holder's freeing, run at most once (×${REPEATS * 2})`, async () => {
    for (let i = 0; i < REPEATS * 2; i++) {
      const r = round();
      const abort = new AbortController();
      const { replies, holderGate } = await setUp(r, { options: { signal: abort.signal } });
      const racing = i % 2 === 1;
      if (racing) r.open(holderGate); // the holder frees in its thread while the primary cancels
      abort.abort();
      const held = await replies[2]!;
      expect(held).toMatchObject({ ok: false, error: { code: "E_CANCELLED" } });
      if (!racing) await wonBack(`${r.round}:2`);
      r.open(0);
      r.open(1);
      await settled(r, replies);
      const counts = r.counts();
      expect(counts.slice(0, 2)).toEqual([1, 1]);
      if (racing) expect(counts[2]).toBeLessThanOrEqual(1);
      else expect(counts[2]).toBe(0);
      expect(held.meta).toMatchObject({ attempts: 1 });
    }
  });
});

describe("a thread host that dies while a held request runs", () => {
  it(`charges the held request's attempt: it never starts more often than its attempts say (×${Math.ceil(REPEATS / 3)})`, async () => {
    const gate = await Gate.open();
    const runs = new Runs(gate);
    const cluster = await createCluster({ handlers: HANDLERS, threads: 1, nodePipeline: 0, logLevel: "silent", restartBackoffMs: 1, restartBackoffMaxMs: 5 });
    // die.js kills the host the moment it starts: each start is one death of the node.
    let deaths = 0;
    cluster.observe({ nodeCrashed: () => void deaths++ });
    try {
      for (let i = 0; i < Math.ceil(REPEATS / 3); i++) {
        const r = new SocketRound(runs);
        const long = cluster.call("hold", r.payload(0));
        await r.running(0);
        // Held ahead in the busy node, it starts as soon as the one before answers, and
        // that answer (and the node's `started`) can die with the host before they reach
        // the primary, which must then count the held request as run, not retry it free.
        const before = deaths;
        const dying = cluster.call("die", {});
        r.open(0);
        const [first, died] = await Promise.all([long, dying]);
        expect(died).toMatchObject({ ok: false, error: { code: "E_CRASHED" }, meta: { attempts: 2 } });
        expect(deaths - before).toBe(2);
        // The one before ran once, or again after its result died with the host: charged either way.
        expect(first).toMatchObject({ ok: true });
        expect(r.counts()[0]).toBeLessThanOrEqual(first.meta.attempts);
      }
    } finally {
      await cluster.close();
      await gate.close();
    }
  });
});

describe("lookahead and a process node", () => {
  it("a busy process node holds nothing ahead: the request waits in the primary's queue", async () => {
    const t = await startCluster({ processes: 1 });
    const gate = await Gate.open();
    try {
      const first = t.cluster.call("gate", { port: gate.port });
      const arrival = await gate.arrival();
      const second = t.cluster.call("gate", { port: gate.port });
      expect(t.cluster.queueLength).toBe(1);
      arrival.open();
      (await gate.arrival()).open();
      expect(await first).toMatchObject({ ok: true, meta: { attempts: 1 } });
      expect(await second).toMatchObject({ ok: true, meta: { attempts: 1 } });
    } finally {
      await gate.close();
      await t.close();
    }
  });
});
