/**
 * Admission control: a full queue answers E_OVERLOADED at once, a TCP flood gets exactly
 * one reply per request while the queue stays within maxQueue, and a connection with
 * maxConnectionInflight requests in flight is no longer read, so the rest of its flood
 * waits in TCP buffers (the client's), not in the primary's memory.
 */
import { describe, expect, it } from "vitest";
import type { Cluster } from "crew";
import { until, useFixtures } from "./fixtures/placement/cluster.js";
import type { Gate } from "./fixtures/placement/gate.js";
import { NdjsonSocket, type ReplyFrame } from "./helpers/ndjson-socket.js";

const fx = useFixtures();

/** The peak queue length and active count: sampled in the cluster's own hooks and in a status() loop. */
function watchLoad(cluster: Cluster) {
  const peak = { queue: 0, active: 0 };
  const sample = () => {
    peak.queue = Math.max(peak.queue, cluster.queueLength);
  };
  cluster.observe({ attemptStarted: sample, requestDone: sample, requestRefused: sample });
  let running = true;
  const loop = (async () => {
    while (running) {
      const status = await cluster.status();
      peak.queue = Math.max(peak.queue, status.queue.length);
      peak.active = Math.max(peak.active, status.requests.active);
    }
  })();
  const stop = async () => {
    running = false;
    await loop;
  };
  fx.defer(stop);
  return { peak, stop };
}

/** Submits through the receivers' callback entry, which answers a refusal before it returns. */
function submitter(cluster: Cluster, gate: Gate) {
  const answers = new Map<string, string>();
  const replies: Array<Promise<void>> = [];
  const submit = (tag: string, priority = 0): "accepted" | "refused" => {
    let answered!: () => void;
    replies.push(new Promise((resolve) => (answered = resolve)));
    const job = cluster.submit({ handler: "gate", payload: gate.payload(tag), priority }, (outcome) => {
      answers.set(tag, outcome.ok ? "ok" : outcome.error.code);
      answered();
    });
    return job === null ? "refused" : "accepted";
  };
  return { submit, answers, all: () => Promise.all(replies) };
}

function frames(prefix: string, count: number, payload: unknown): Array<Record<string, unknown>> {
  return Array.from({ length: count }, (_, i) => ({ id: `${prefix}${i}`, handler: "whoami", payload }));
}

/** A raw NDJSON connection (every reply kept, duplicates included), closed after the test. */
async function connect(port: number): Promise<NdjsonSocket> {
  const socket = await NdjsonSocket.connect(port);
  fx.defer(() => socket.close());
  return socket;
}

/** Reply codes by request id; throws on a second reply for any id. */
function codesById(replies: readonly ReplyFrame[]): Map<string | number | null, string> {
  const codes = new Map<string | number | null, string>();
  for (const reply of replies) {
    if (codes.has(reply.id)) throw new Error(`two replies for ${String(reply.id)}`);
    codes.set(reply.id, reply.ok ? "ok" : (reply.error?.code ?? "?"));
  }
  return codes;
}

describe("maxQueue", () => {
  it("refuses exactly the requests that find the queue full, at once, whatever their priority", async () => {
    // nodePipeline and nodeLookahead 0: nothing is sent ahead to the busy node, so everything waiting waits
    // in the queue (the gate's measured run time would otherwise decide).
    const cluster = await fx.cluster({ threads: 1, maxQueue: 3, nodePipeline: 0, nodeLookahead: 0 });
    const gate = await fx.gate();
    const { submit, answers, all } = submitter(cluster, gate);
    expect(submit("hold")).toBe("accepted");
    await gate.entered(1);

    // The node is held: three requests fill the queue, the rest are refused. A high
    // priority does not evict anything queued.
    const verdicts = ["q0", "q1", "q2", "q3", "q4", "q5", "q6"].map((tag) => [tag, submit(tag, tag === "q5" ? 100 : 0)]);
    expect(verdicts).toEqual([
      ["q0", "accepted"],
      ["q1", "accepted"],
      ["q2", "accepted"],
      ["q3", "refused"],
      ["q4", "refused"],
      ["q5", "refused"],
      ["q6", "refused"],
    ]);
    // Refused at once: every refusal was answered before its submit returned.
    expect(Object.fromEntries(answers)).toEqual({ q3: "E_OVERLOADED", q4: "E_OVERLOADED", q5: "E_OVERLOADED", q6: "E_OVERLOADED" });
    const status = await cluster.status();
    expect(status.queue).toEqual({ length: 3, max: 3 });
    expect(status.requests).toMatchObject({ accepted: 4, refused: 4, active: 4 });

    // One request leaves the queue for the node: exactly one more fits.
    gate.release("hold");
    await gate.entered(2);
    expect(submit("q7")).toBe("accepted");
    expect(submit("q8")).toBe("refused");
    gate.open();
    await all();
    for (const tag of ["hold", "q0", "q1", "q2", "q7"]) expect(answers.get(tag), tag).toBe("ok");
    expect(gate.entries.map((e) => e.tag)).toEqual(["hold", "q0", "q1", "q2", "q7"]);
  });

  it("answers every request of a TCP flood exactly once and never queues past maxQueue", async () => {
    const MAX_QUEUE = 16;
    const PER_CONNECTION = 1000;
    const cluster = await fx.cluster({ threads: 2, maxQueue: MAX_QUEUE });
    const { port } = await cluster.listen({ port: 0 });
    const load = watchLoad(cluster);
    const connections = await Promise.all([0, 1, 2].map(() => connect(port)));

    // Each connection's whole flood in one write: the primary parses hundreds of frames
    // per chunk, far more than two nodes and a queue of 16 can take.
    connections.forEach((c, n) => c.send(...frames(`c${n}-`, PER_CONNECTION, {})));
    await Promise.all(connections.map((c) => c.waitForReplies(PER_CONNECTION)));
    // A reply that came twice would come before the pong: the replies of a connection
    // leave in order.
    await Promise.all(connections.map((c, n) => c.ping(`ping-${n}`)));
    await load.stop();

    const tally = { ok: 0, E_OVERLOADED: 0 };
    connections.forEach((c, n) => {
      const codes = codesById(c.replies);
      expect(codes.size).toBe(PER_CONNECTION + 1);
      for (let i = 0; i < PER_CONNECTION; i++) {
        const code = codes.get(`c${n}-${i}`);
        expect(["ok", "E_OVERLOADED"]).toContain(code);
        tally[code as keyof typeof tally]++;
      }
    });
    expect(tally.ok).toBeGreaterThan(0);
    expect(tally.E_OVERLOADED).toBeGreaterThan(0);
    // Full, never over: a refusal happens with exactly maxQueue waiting.
    expect(load.peak.queue).toBe(MAX_QUEUE);
    // Accepted and unanswered: the queue, plus what each node runs or holds sent ahead
    // (pipelining, for handlers as short as this one).
    const { nodeConcurrency, nodePipeline } = cluster.options;
    expect(load.peak.active).toBeLessThanOrEqual(MAX_QUEUE + 2 * (nodeConcurrency + nodePipeline));
    const status = await cluster.status();
    expect(status.requests).toMatchObject({ accepted: tally.ok, completed: tally.ok, refused: tally.E_OVERLOADED, active: 0 });
    expect(status.queue.length).toBe(0);
  });

  it("counts hash requests waiting for their key's busy node against maxQueue", async () => {
    // Regression: parked requests (bound to one busy node) used to escape maxQueue.
    const cluster = await fx.cluster({ threads: 1, balancer: "hash", maxQueue: 2 });
    const gate = await fx.gate();
    const hold = cluster.call("gate", gate.payload("hold"), { key: "k" });
    await gate.entered(1);
    const calls = Array.from({ length: 5 }, () => cluster.call("whoami", {}, { key: "k" }));
    const queued = cluster.queueLength;
    gate.open();
    const codes = (await Promise.all([hold, ...calls])).map((r) => (r.ok ? "ok" : r.error.code));
    expect(queued).toBeLessThanOrEqual(2);
    expect(codes).toEqual(["ok", "ok", "ok", "E_OVERLOADED", "E_OVERLOADED", "E_OVERLOADED"]);
  });
});

describe("maxConnectionInflight", () => {
  it("stops reading a connection at the cap, so TCP backpressure holds the rest of its flood", async () => {
    const CAP = 8;
    const COUNT = 2500;
    const payload = { pad: "x".repeat(4000) };
    const frameBytes = Buffer.byteLength(JSON.stringify(frames("f", 1, payload)[0]) + "\n") + 4; // ids grow by a few digits
    // The receiver pauses the socket on the frame that reaches the cap but finishes the
    // chunk in hand, and a socket delivers at most 64 KiB per chunk.
    const perChunk = Math.floor(65536 / (frameBytes - 4)) + 1;
    // Lookahead off: every request past the gate waits in the queue, where this test counts them.
    const cluster = await fx.cluster({ threads: 1, maxConnectionInflight: CAP, nodeLookahead: 0 });
    const { port } = await cluster.listen({ port: 0 });
    const gate = await fx.gate();
    const hold = cluster.call("gate", gate.payload("hold"));
    await gate.entered(1);
    const load = watchLoad(cluster);
    const flood = await connect(port);
    flood.send(...frames("f", COUNT, payload));

    // Nothing completes while the node is held: the connection fills up to the cap.
    await until(() => cluster.queueLength >= CAP);
    // Let the primary spin its event loop through real I/O: twenty ping round trips on
    // another connection. A receiver still reading the flood would take more of it meanwhile.
    const other = await connect(port);
    for (let i = 0; i < 20; i++) await other.ping(`p${i}`);
    const held = (await cluster.status()).requests;
    expect(held.active - 1).toBeGreaterThanOrEqual(CAP); // minus the held gate request
    expect(held.active - 1).toBeLessThanOrEqual(CAP - 1 + perChunk);
    // The flood (~10 MB in one write) is still being written: the primary has not taken it.
    expect(flood.socket.writableLength).toBeGreaterThan(0);

    gate.open();
    await hold;
    await flood.waitForReplies(COUNT);
    await load.stop();
    expect(load.peak.active - 1).toBeLessThanOrEqual(CAP - 1 + perChunk);
    const codes = codesById(flood.replies);
    expect(codes.size).toBe(COUNT);
    expect([...codes.values()].every((code) => code === "ok")).toBe(true);
  });
});
