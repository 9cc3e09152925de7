/**
 * What runs inside a compute node, the same for threads and processes: it loads the
 * handlers, runs attempts with their ctx, and talks to the primary in batches of
 * tagged messages. The entry files only plug it into a MessagePort or fork IPC.
 */
import type { Logger } from "pino";
import { CheckpointTooLargeError, type WireError } from "../errors.js";
import { claimHeld } from "../nodes/hand-over.js";
import type { FromNode, HandlerConfig, NodeInit, ResultMsg, RunMsg, ToNode } from "../nodes/messages.js";
import type { HandlerContext } from "../types.js";
import { HandlerErrorLog, handlerWireError } from "./handler-error.js";
import { toJson } from "./json-value.js";
import { captureConsole, nodeLogger } from "./output.js";
import { HandlerModuleError, loadHandler, type LoadedHandler } from "./load-handlers.js";
import { quietRejection, Running } from "./running.js";

export class NodeRuntime {
  readonly #init: NodeInit;
  readonly #send: (msgs: FromNode[]) => void;
  readonly #handlers = new Map<string, LoadedHandler>();
  readonly #running = new Map<number, Running>();
  /**
   * Attempts the primary sent ahead while every slot was busy (node pipelining): they
   * start in arrival order as slots free, so the oldest unfinished attempts are the running ones.
   */
  readonly #waiting: RunMsg[] = [];
  readonly #log: () => Logger;
  readonly #errors: HandlerErrorLog;
  #outbox: FromNode[] = [];
  #stop!: () => void;
  /** Resolves when the primary asks the node to stop. */
  readonly stopped = new Promise<void>((resolve) => (this.#stop = resolve));

  /**
   * Reads, synchronously, messages the primary sent while this node's thread was busy
   * (threads only: fork IPC has no synchronous read). Run before a waiting attempt starts,
   * so an abort that arrived meanwhile drops it instead of letting it run.
   */
  readonly #poll: (() => void) | undefined;
  /**
   * Memory shared with the primary (threads only): the ids of the attempts running now.
   * Without it, the primary goes by dispatch order, and results must leave before the
   * next attempt starts.
   */
  readonly #slots: BigInt64Array | undefined;
  /** The lookahead hand-over cell (threads only): see #claim. */
  readonly #held: BigInt64Array | undefined;
  #starting = false;
  /** A process node waits for its IPC to be read before starting a held attempt: one is pending. */
  #deferred = false;

  constructor(init: NodeInit, send: (msgs: FromNode[]) => void, shared: { poll?: () => void; slots?: BigInt64Array; held?: BigInt64Array } = {}) {
    this.#init = init;
    this.#send = send;
    this.#poll = shared.poll;
    this.#slots = shared.slots;
    this.#held = shared.held;
    this.#log = nodeLogger(init.logLevel, init.nodeId);
    captureConsole(this.#log, () => this.#currentRequestId());
    this.#errors = new HandlerErrorLog(this.#log);
  }

  /** The request running now, when exactly one is: console output is put down to it. */
  #currentRequestId(): string | undefined {
    if (this.#running.size !== 1) return undefined;
    for (const running of this.#running.values()) return running.msg.requestId;
  }

  /** Imports every handler; answers `ready` with their configs, or `init-failed` naming the file. */
  async load(): Promise<FromNode> {
    const configs: Record<string, HandlerConfig> = {};
    try {
      for (const [name, file] of Object.entries(this.#init.handlers)) {
        // Sent at once, not batched: a start that hangs in this import is blamed on this file.
        this.#send([{ t: "loading", file }]);
        const handler = await loadHandler(file, this.#init.compiled?.[name]);
        this.#handlers.set(name, handler);
        configs[name] = handler.config;
      }
    } catch (err) {
      const file = err instanceof HandlerModuleError ? err.file : "";
      return { t: "init-failed", file, message: err instanceof Error ? err.message : String(err) };
    }
    return { t: "ready", configs };
  }

  receive(msgs: ToNode[]): void {
    // Attempts already waiting were held behind another: before one starts, every message
    // that has arrived is read (an abort for it may be among them, in a later batch).
    const held = this.#waiting.length > 0;
    for (const msg of msgs) {
      switch (msg.t) {
        case "run":
          this.#waiting.push(msg);
          break;
        case "abort": {
          const running = this.#running.get(msg.a);
          if (running) running.abort(abortReason(msg.reason));
          else this.#dropWaiting(msg.a, msg.reason);
          break;
        }
        case "ckpt-ack":
          this.#running.get(msg.a)?.acked(msg.seq, this.#sendCheckpoint(msg.a));
          break;
        case "mem?": {
          const { heapUsed, rss } = process.memoryUsage();
          this.#post({ t: "mem", q: msg.q, heapUsed, rss });
          break;
        }
        case "stop":
          this.#stop();
          break;
        case "take": // answered by the thread transport, never sent on to here
          break;
      }
    }
    this.#startWaiting(held);
  }

  #run(msg: RunMsg): void {
    const handler = this.#handlers.get(msg.handler);
    const running = new Running(msg);
    running.startedAt = performance.now();
    if (this.#slots) {
      running.slot = this.#slots.indexOf(0n);
      if (running.slot >= 0) Atomics.store(this.#slots, running.slot, BigInt(msg.a));
    }
    this.#running.set(msg.a, running);
    let result: unknown;
    try {
      if (!handler) throw new Error(`handler ${msg.handler} is not loaded on node ${this.#init.nodeId}`);
      const payload = msg.payloadJson === undefined ? msg.payload : JSON.parse(msg.payloadJson);
      result = handler.fn(payload, this.#context(msg, running));
    } catch (err) {
      this.#fail(msg.a, err);
      return;
    }
    if (isPromiseLike(result)) {
      result.then(
        (value) => this.#succeed(msg.a, value),
        (err: unknown) => this.#fail(msg.a, err),
      );
    } else {
      this.#succeed(msg.a, result);
    }
  }

  #context(msg: RunMsg, running: Running): HandlerContext {
    const log = this.#log;
    const node = { id: this.#init.nodeId, kind: this.#init.kind };
    let child: Logger | undefined;
    return {
      requestId: msg.requestId,
      idempotencyKey: msg.idempotencyKey,
      attempt: msg.attempt,
      resumeFrom: msg.resumeFrom === null ? undefined : JSON.parse(msg.resumeFrom),
      get signal() {
        return running.signal;
      },
      node,
      checkpoint: (state: unknown) => this.#checkpoint(msg.a, running, state),
      // Most handlers never log: build the child logger on first use only.
      get log() {
        child ??= log().child({ requestId: msg.requestId, attempt: msg.attempt, handler: msg.handler });
        return child;
      },
    };
  }

  /** Every refusal is a promise nobody has to handle: an unawaited refused checkpoint is harmless. */
  #checkpoint(a: number, running: Running, state: unknown): Promise<void> {
    if (this.#running.get(a) !== running) return quietRejection(new Error("checkpoint after the attempt ended"));
    if (running.reason) return quietRejection(running.reason);
    let json: string;
    try {
      json = toJson(state, "checkpoint");
    } catch (err) {
      return quietRejection(err);
    }
    const bytes = Buffer.byteLength(json);
    if (bytes > this.#init.maxCheckpointBytes) {
      return quietRejection(
        new CheckpointTooLargeError(`checkpoint of ${bytes} bytes is over the limit of ${this.#init.maxCheckpointBytes} bytes (maxCheckpointBytes, --max-checkpoint-bytes)`),
      );
    }
    return running.checkpoint(json, this.#sendCheckpoint(a));
  }

  #sendCheckpoint(a: number): (seq: number, json: string) => void {
    return (seq, json) => this.#post({ t: "ckpt", a, seq, json });
  }

  #succeed(a: number, value: unknown): void {
    let json: string;
    try {
      json = toJson(value, "result");
    } catch (err) {
      return this.#fail(a, err);
    }
    // Counted in UTF-16 units first: only a result near the limit pays for a byte count.
    const max = this.#init.maxResultBytes;
    if (json.length > max / 3 && Buffer.byteLength(json) > max) {
      const bytes = Buffer.byteLength(json);
      return this.#fail(a, new RangeError(`result of ${bytes} bytes is over the limit of ${max} bytes (maxResultBytes, --max-result-bytes)`));
    }
    this.#end(a, { t: "result", a, ok: true, json, ms: 0 });
  }

  #fail(a: number, err: unknown): void {
    const running = this.#running.get(a);
    if (!running) return;
    const { requestId, attempt, handler } = running.msg;
    // An attempt the primary gave up on (deadline, cancel, a hedge that lost, shutdown) is
    // expected to end in its abort error: nobody reads that reply, and it is not the handler's fault.
    if (!running.reason) this.#errors.record(err, { requestId, attempt, handler });
    this.#end(a, { t: "result", a, ok: false, error: handlerWireError(err), ms: 0 });
  }

  #end(a: number, msg: ResultMsg): void {
    const running = this.#running.get(a);
    if (!running) return;
    this.#running.delete(a);
    msg.ms = performance.now() - running.startedAt;
    if (this.#slots && running.slot >= 0) Atomics.store(this.#slots, running.slot, 0n);
    // A handler that returned without awaiting its checkpoints: nobody waits on them now.
    running.ended();
    this.#post(msg);
    this.#startWaiting(true);
  }

  /**
   * Starts waiting attempts, in arrival order, while slots are free. Before one that
   * follows another attempt, messages that arrived meanwhile are read, so an abort drops
   * its attempt before it runs; and without shared slots the results so far go out first
   * (the primary then tells running from waiting attempts by their order: if this one
   * killed the node first, a request that had finished would take the blame).
   *
   * A thread reads them even when nothing waits: the primary's next attempt (with
   * lookahead, the one it holds ahead) has often arrived while the last one ran; started
   * at once, its `started` leaves with the last result in one batch. Read later, from
   * the event loop, it cost a batch of its own: a wake-up of the thread host and of the
   * primary per request (benchmarks/lookahead.js, docs/bench.md). What is done leaves
   * before an attempt read so starts, as it did when the event loop delivered that one:
   * else the result of an attempt that finished would wait behind a long one, and be lost
   * with it if it killed the thread (the attempt then ran again, uncharged). Attempts that
   * arrived together still run back to back, their results in one batch (pipelining).
   */
  #startWaiting(afterAnother: boolean): void {
    if (this.#starting) return; // re-entered from a handler that ended synchronously: the outer loop goes on
    this.#starting = true;
    try {
      let followsAnother = afterAnother;
      while (this.#running.size < this.#init.concurrency) {
        const arrivedBefore = this.#waiting.length > 0;
        if (followsAnother && this.#poll) this.#poll();
        if (this.#running.size >= this.#init.concurrency || this.#waiting.length === 0) break;
        if (followsAnother && !this.#poll) {
          if (!this.#slots) this.#flush();
          this.#deferStart();
          break;
        }
        const msg = this.#waiting.shift()!;
        if (msg.held) {
          if (!this.#claim(msg.a)) continue; // taken back: it runs on another node
          // Held means long: what is done so far leaves now, not after it, and the
          // primary learns this node may hold another.
          this.#post({ t: "started", a: msg.a });
          this.#flush();
        } else if (followsAnother && !arrivedBefore) {
          this.#flush();
        }
        this.#run(msg);
        followsAnother = true;
      }
    } finally {
      this.#starting = false;
    }
  }

  /**
   * A held attempt starts only if this node wins it on the hand-over cell (hand-over.ts);
   * the primary's take-back decides on the same cell, so exactly one wins. Lost: dropped
   * without a word (the primary already counts it as never run here).
   */
  #claim(a: number): boolean {
    return !this.#held || claimHeld(this.#held, a);
  }

  /**
   * Fork IPC has no synchronous read: a process node lets its event loop read what the
   * primary sent (an abort for the attempt held next) before it starts that attempt. Two
   * turns: an immediate queued from the poll phase runs before the next poll, the second
   * one after it, so every message that had arrived is read and handled by then.
   */
  #deferStart(): void {
    if (this.#deferred) return;
    this.#deferred = true;
    setImmediate(() =>
      setImmediate(() => {
        this.#deferred = false;
        this.#startWaiting(false);
      }),
    );
  }

  /** An attempt aborted before it started: it never runs, and its slot at the primary frees. */
  #dropWaiting(a: number, reason: WireError): void {
    const i = this.#waiting.findIndex((m) => m.a === a);
    if (i < 0) return;
    const [msg] = this.#waiting.splice(i, 1);
    // Held: it must be won like a start (hand-over.ts); lost, it is the primary's already.
    if (msg!.held && !this.#claim(a)) return;
    this.#post({ t: "result", a, ok: false, error: reason, ms: 0, skipped: true });
  }

  /** Queues a message; everything queued in one turn goes out as one batch. */
  #post(msg: FromNode): void {
    if (this.#outbox.push(msg) === 1) queueMicrotask(this.#flush);
  }

  readonly #flush = (): void => {
    if (this.#outbox.length === 0) return;
    const batch = this.#outbox;
    this.#outbox = [];
    this.#send(batch);
  };
}

function abortReason(reason: WireError): Error {
  const err = new Error(reason.message);
  err.name = "AbortError";
  (err as Error & { code: string }).code = reason.code;
  return err;
}

function isPromiseLike(v: unknown): v is PromiseLike<unknown> {
  return typeof v === "object" && v !== null && typeof (v as { then?: unknown }).then === "function";
}
