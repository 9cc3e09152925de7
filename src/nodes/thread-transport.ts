/**
 * A thread node: one Piscina pool of exactly one thread running one long task
 * (node-runtime/thread-entry.ts) that talks over its own MessagePort. piscina owns the
 * thread's start, heap cap (resourceLimits) and termination; crew owns replacement,
 * so each life of the node gets a fresh pool and piscina never respawns on its own.
 */
import { MessageChannel, receiveMessageOnPort } from "node:worker_threads";
import { Piscina } from "piscina";
import { takeHeld } from "./hand-over.js";
import type { FromNode, TakenMsg, ToNode } from "./messages.js";
import type { ExitInfo, NodeTransport, TransportOptions } from "./transport.js";

const ENTRY = new URL("../node-runtime/thread-entry.js", import.meta.url).href;

/** A thread's transport always knows what its thread was running: the slots it shares with it. */
export interface ThreadTransport extends NodeTransport {
  runningNow(): number[];
}

export function createThreadTransport({ init, memoryMb, events }: Omit<TransportOptions, "log" | "frozenMs">): ThreadTransport {
  const pool = new Piscina({
    filename: ENTRY,
    minThreads: 0, // started by the one run() below; not respawned by piscina after a crash
    maxThreads: 1,
    concurrentTasksPerWorker: 1,
    idleTimeout: 0,
    atomics: "disabled", // the task never ends while the node lives: no Atomics.wait between tasks
    recordTiming: false,
    resourceLimits: { maxOldGenerationSizeMb: memoryMb },
  });
  const { port1, port2 } = new MessageChannel();
  const kill = new AbortController();
  let exited = false;
  let threadId: number | null = null;

  const exit = (info: ExitInfo) => {
    if (exited) return;
    // piscina can report the death before the port has delivered what the thread posted
    // last: deliver it first, or a finished attempt would count as lost (and be blamed).
    for (let m = receiveMessageOnPort(port1); m; m = receiveMessageOnPort(port1)) events.onMessages(m.message as FromNode[]);
    exited = true;
    port1.close();
    events.onExit(info);
    pool.destroy().catch(() => {});
  };

  port1.on("message", (msgs: FromNode[]) => {
    // Read while the thread lives (its first message is `ready`): piscina forgets a dead one.
    threadId ??= pool.threads[0]?.threadId ?? null;
    if (!exited) events.onMessages(msgs);
  });
  // With no listener, an error piscina cannot pin on a task would end the primary.
  pool.on("error", (err: unknown) => exit(threadExit(err)));
  // One slot per concurrent attempt: the node writes the id it starts and clears it when
  // its result is out, so a crash says exactly which attempts were running. 64 bits, as
  // the cell below: attempt ids grow for the cluster's life, and an Int32 wrapped after
  // 2^31 attempts (~12 h at 50k req/s), when a crash would no longer charge what it ran.
  const slots = new BigInt64Array(new SharedArrayBuffer(8 * init.concurrency));
  // The lookahead hand-over cell: who won each held attempt, the node or a take (hand-over.ts).
  const held = new BigInt64Array(new SharedArrayBuffer(8));
  pool.run({ port: port2, init, slots, held }, { transferList: [port2] as never, signal: kill.signal }).then(
    () => exit({ code: 0, signal: null, reason: "stopped" }),
    (err: unknown) => exit(kill.signal.aborted ? { code: null, signal: null, reason: "terminated" } : threadExit(err)),
  );

  return {
    kind: "thread",
    pid: process.pid,
    get threadId() {
      return threadId;
    },
    post(msgs: ToNode[]) {
      if (exited) return;
      // Lookahead's hand-over (hand-over.ts): a take is decided here, never by the thread,
      // and before the batch is delivered, so no abort in it can free the thread first.
      let taken: TakenMsg[] | null = null;
      for (const msg of msgs) {
        if (msg.t === "take") (taken ??= []).push({ t: "taken", a: msg.a, ok: takeHeld(held, msg.a) });
      }
      const forward = taken ? msgs.filter((m) => m.t !== "take") : msgs;
      if (forward.length > 0) port1.postMessage(forward);
      if (!taken) return;
      // Answered from a microtask, not from inside post(): the caller is still flushing.
      const answers = taken;
      queueMicrotask(() => {
        if (!exited) events.onMessages(answers);
      });
    },
    kill() {
      kill.abort();
    },
    runningNow: () => Array.from(slots, Number).filter((a) => a !== 0),
    lookahead: true,
  };
}

/** Turns what piscina rejects with into an exit report. */
function threadExit(err: unknown): ExitInfo {
  const e = err as { code?: string; message?: string };
  if (e?.code === "ERR_WORKER_OUT_OF_MEMORY") return { code: null, signal: null, reason: "out of memory" };
  const match = /exit(?:ed with)? code:? (\d+)/i.exec(e?.message ?? "");
  if (match) return { code: Number(match[1]), signal: null, reason: `exited with code ${match[1]}` };
  return { code: null, signal: null, reason: `uncaught: ${e?.message ?? String(err)}` };
}
