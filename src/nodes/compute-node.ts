/**
 * One compute node: an id that outlives its thread or process, an explicit state,
 * counters, and the attempts running on it. The transport under it is the only part
 * that knows threads from processes; a restart swaps in a fresh transport, same id.
 */
import type { Logger } from "pino";
import type { NodeView } from "../primary/balancers/balancer.js";
import { type CheckpointMsg, type FromNode, type HandlerConfig, type NodeInit, type NodeKind, type ResultMsg, type ToNode, unsendable } from "./messages.js";
import { type MemoryUse, MemoryQueries } from "./memory-queries.js";
import type { ExitInfo, NodeTransport, TransportFactory } from "./transport.js";
import { flushInPass } from "./flush-pass.js";

/**
 * starting: its code is loading handlers; up: takes attempts; down: dead, waiting to
 * be restarted; stopping: asked to stop; stopped: stopped for good.
 */
export type NodeState = "starting" | "up" | "down" | "stopping" | "stopped";

export interface NodeListener {
  onResult(node: ComputeNode, msg: ResultMsg): void;
  onCheckpoint(node: ComputeNode, msg: CheckpointMsg): void;
  /**
   * The node's thread or process ended while up. `lost`: its unanswered attempts, in
   * dispatch order. `ran`: those it was running, when the transport can tell (else null).
   */
  onExit(node: ComputeNode, info: ExitInfo, lost: number[], ran: number[] | null): void;
  /** Lookahead: held attempt `a` was won back (takeBack); it never runs here and is no longer the node's. */
  onTakenBack(node: ComputeNode, a: number): void;
  /** Lookahead: the node no longer holds an attempt ahead (it started it), so it may be sent another. */
  onCanHold(node: ComputeNode): void;
}

/** Why a start failed: a handler module that did not load, or a node that died while starting. */
export class NodeStartError extends Error {
  constructor(
    message: string,
    readonly file: string | null,
    readonly exit: ExitInfo | null,
  ) {
    super(message);
  }
}

export interface ComputeNodeOptions {
  id: string;
  kind: NodeKind;
  capacity: number;
  memoryMb: number;
  /** How long a start may take (loading every handler) before the node is killed. */
  startTimeoutMs: number;
  /** How long its process may stay stopped (SIGSTOP) before it is killed; 0: never (child.ts). */
  frozenMs: number;
  init: Omit<NodeInit, "nodeId" | "kind">;
  /** Handler name → version (content hash) of the files in init.handlers. */
  versions?: Readonly<Record<string, string>>;
  transport: TransportFactory;
  listener: NodeListener;
  /** Receives the node's output, relayed (process nodes and hosted thread nodes). */
  log: Logger;
}


export class ComputeNode implements NodeView {
  readonly id: string;
  readonly kind: NodeKind;
  readonly capacity: number;
  #state: NodeState = "down";
  #transport: NodeTransport | null = null;
  /** The latest thread or process, kept after it dies so crash logs and status can name it. */
  #last: NodeTransport | null = null;
  readonly #running = new Set<number>();
  readonly #options: ComputeNodeOptions;
  #outbox: ToNode[] = [];
  /** An abort is queued, and the outbox leaves at the end of the current task (send()). */
  #abortDue = false;
  readonly #memoryQueries = new MemoryQueries();
  #exited: (() => void) | null = null;
  /** Lookahead: the attempt held ahead in the node, not yet started there nor taken back (0: none). */
  #held = 0;
  /** A take of the held attempt is on its way to the node. */
  #taking = false;

  /** Requests answered (result or handler error) over the node's whole life. */
  completed = 0;
  /** Requests answered since the current thread or process started. */
  completedSinceStart = 0;
  crashes = 0;
  restarts = 0;
  /** Deaths in a row before answering any request: drives the restart backoff. */
  earlyDeaths = 0;
  startedAt = 0;
  lastExit: ExitInfo | null = null;
  /** The dispatcher's estimate of the work sent to this node and not yet answered, in ms. */
  expectedMs = 0;

  constructor(options: ComputeNodeOptions) {
    this.#options = options;
    this.id = options.id;
    this.kind = options.kind;
    this.capacity = options.capacity;
  }

  get state(): NodeState {
    return this.#state;
  }

  get inFlight(): number {
    return this.#running.size;
  }

  get pid(): number | null {
    return this.#last?.pid ?? null;
  }

  get threadId(): number | null {
    return this.#last?.threadId ?? null;
  }

  /** True for an attempt in one of the node's slots, false for one still waiting in it (sent ahead). */
  isRunning(a: number): boolean {
    for (const id of this.runningIds()) if (id === a) return true;
    return false;
  }

  /** The attempts in the node's slots: the first `capacity` unfinished, in dispatch order. */
  *runningIds(): Generator<number> {
    let n = 0;
    for (const id of this.#running) {
      if (n++ >= this.capacity) return;
      yield id;
    }
  }

  /**
   * When the node's current attempt started, as far as the primary can tell: when it was
   * sent to an idle node, or when the one before it answered. 0 when idle.
   */
  busySince = 0;

  get hasRoom(): boolean {
    return this.#state === "up" && this.#running.size < this.capacity;
  }

  /** Whether this node loaded a handler of that name (a reload may add or delete handlers). */
  serves(handler: string): boolean {
    return Object.hasOwn(this.#options.init.handlers, handler);
  }

  /** The version of `handler` this node runs (its file's content hash), or undefined. */
  versionOf(handler: string): string | undefined {
    return this.#options.versions?.[handler];
  }

  /** The handler names this node loaded. */
  get handlerNames(): string[] {
    return Object.keys(this.#options.init.handlers);
  }

  /**
   * Takes the node out of service without dropping anything: from now on it gets no
   * attempt (state "stopping"), finishes every attempt it holds, then stops. A crash
   * meanwhile ends it too (its attempts are lost as in any crash, and retried elsewhere);
   * it is never restarted. Resolves once its thread or process has exited.
   */
  retire(): Promise<void> {
    if (this.#state !== "up") return this.stop(0);
    this.#state = "stopping";
    return new Promise((resolve) => {
      this.#exited = resolve;
      if (this.#running.size === 0) this.#post({ t: "stop" });
    });
  }

  /** Starts (or restarts) the node's code; resolves with the handler configs once it is up. */
  start(): Promise<Record<string, HandlerConfig>> {
    if (this.startedAt !== 0) this.restarts++;
    this.#state = "starting";
    this.startedAt = Date.now();
    this.completedSinceStart = 0;
    return new Promise((resolve, reject) => {
      let ready = false;
      let loading: string | null = null;
      const { startTimeoutMs } = this.#options;
      // An import that never settles (a top-level await on a database that is down) must
      // not leave `crew start` waiting in silence, or a restarting node `starting` forever.
      const deadline = setTimeout(() => {
        const what = loading ?? "the node";
        reject(new NodeStartError(`${what} did not finish loading within ${startTimeoutMs} ms (nodeStartTimeoutMs, --node-start-timeout-ms)`, loading, null));
        transport.kill();
      }, startTimeoutMs);
      deadline.unref();
      const transport = this.#options.transport({
        init: { ...this.#options.init, nodeId: this.id, kind: this.kind },
        memoryMb: this.#options.memoryMb,
        frozenMs: this.#options.frozenMs,
        log: this.#options.log,
        events: {
          onMessages: (msgs) => {
            if (ready) return this.#receive(msgs);
            // Every message of the batch: a transport may send `loading`, `ready` and what
            // follows together (one that joins what one read brought in), and a `ready` after
            // the first message was once missed, so the node never came up.
            for (let i = 0; i < msgs.length; i++) {
              const msg = msgs[i]!;
              if (msg.t === "loading") {
                loading = msg.file;
              } else if (msg.t === "ready") {
                ready = true;
                clearTimeout(deadline);
                // A stop asked for while starting stands: the node stops, it does not come up.
                if (this.#state === "starting") this.#state = "up";
                resolve(msg.configs);
                if (i + 1 < msgs.length) this.#receive(msgs.slice(i + 1));
                return;
              } else if (msg.t === "init-failed") {
                clearTimeout(deadline);
                reject(new NodeStartError(`${msg.file || "a handler"}: ${msg.message}`, msg.file || null, null));
                transport.kill();
                return;
              }
            }
          },
          onExit: (info) => {
            if (this.#transport === transport) this.#transport = null;
            if (ready) return this.#onExit(info, transport.runningNow());
            clearTimeout(deadline);
            this.#state = "down";
            this.lastExit = info;
            reject(new NodeStartError(`node ${this.id} died while starting: ${info.reason}`, null, info));
            this.#settleStop();
          },
        },
      });
      this.#transport = transport;
      this.#last = transport;
    });
  }

  /** Starts an attempt on this node. The dispatcher only calls it when hasRoom (or to send it ahead). */
  run(msg: ToNode & { t: "run" }): void {
    if (this.#running.size === 0) this.busySince = performance.now();
    this.#running.add(msg.a);
    if (msg.held) this.#held = msg.a;
    this.#post(msg);
  }

  /**
   * True when the node may be sent a request to hold ahead: its transport can hand one
   * back (thread nodes), and the last one it held has been started there or taken back.
   * The primary's own count is not enough: a node that went idle before the held request
   * reached it has not started it, though the primary already counts it as running.
   */
  get canHold(): boolean {
    return this.#state === "up" && this.#held === 0 && this.#transport?.lookahead === true;
  }

  /** The attempt held ahead in this node that no take is already after, or 0. */
  heldAttempt(): number {
    return this.#taking ? 0 : this.#held;
  }

  /** Whether a take of this node's held attempt is on its way (lookahead.ts counts them against free slots). */
  get taking(): boolean {
    return this.#taking;
  }

  /**
   * Asks the node to give back held attempt `a`. The transport decides by compare-and-swap
   * on memory the thread shares with it (hand-over.ts): won back,
   * the listener hears onTakenBack (the attempt never runs here); lost, the node has
   * started it and its result follows. True when `a` is held here, not started as far as
   * the primary knows, and asked back (now, or by a take already on its way); false when
   * it is not held here.
   */
  takeBack(a: number): boolean {
    if (a === 0 || a !== this.#held || !this.#transport) return false;
    if (this.#taking) return true;
    this.#taking = true;
    // Sent now, with whatever is queued before it: a free node is waiting, or a request has
    // just answered (deadline, cancel). For threads in this process the swap is made here
    // and then, so such a request never starts.
    this.#post({ t: "take", a });
    this.#send(true);
    return true;
  }

  /**
   * Abort signals and checkpoint acks; dropped when the node is gone. An abort leaves at
   * the end of the current task, not in the turn's pass: the reply it goes with is out
   * already, and a node that frees up before it arrives would start the attempt it drops.
   * Not at once either: requests given up together (a client hangs up, the drain ends)
   * are given up in one task, and the takes of those held ahead (takeBack, sent at once)
   * must reach the node with or before the aborts of those it runs, or the node, freed by
   * an abort, could start a held one first. The transport decides a batch's takes before
   * it delivers the batch (thread-transport.ts).
   */
  send(msg: ToNode): void {
    if (!this.#transport) return;
    this.#post(msg);
    if (msg.t === "abort" && !this.#abortDue) {
      this.#abortDue = true;
      queueMicrotask(this.#sendAbort);
    }
  }

  readonly #sendAbort = (): void => {
    this.#abortDue = false;
    this.#send(true);
  };

  /** Kills the thread or process now; the usual exit path follows (onExit). */
  kill(): void {
    // Down from now: no new attempt is placed on a node that is about to die.
    if (this.#state === "up") this.#state = "down";
    this.#transport?.kill();
  }

  /** Asks the node to stop, and kills it if it has not within `graceMs`. Never restarted after. */
  stop(graceMs: number): Promise<void> {
    const previous = this.#state;
    this.#state = "stopping";
    if (!this.#transport || previous === "down") {
      this.#state = "stopped";
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      // A node already retiring keeps its retire() waiter too.
      const before = this.#exited;
      this.#exited = before ? () => (before(), resolve()) : resolve;
      this.#post({ t: "stop" });
      setTimeout(() => this.kill(), graceMs).unref();
    });
  }

  /** Heap and RSS of the node's thread or process, or null when it does not answer in time. */
  memory(): Promise<MemoryUse | null> {
    if (this.#state !== "up") return Promise.resolve(null);
    return this.#memoryQueries.ask((q) => this.#post({ t: "mem?", q }));
  }

  #receive(msgs: FromNode[]): void {
    const listener = this.#options.listener;
    for (const msg of msgs) {
      if (msg.t === "result") {
        if (!this.#running.delete(msg.a)) continue;
        if (msg.a === this.#held) {
          // Aborted while held, and dropped by the node: a take on its way is answered late, and ignored.
          this.#held = 0;
          this.#taking = false;
        }
        this.busySince = this.#running.size === 0 ? 0 : performance.now();
        // A retiring node stops once it holds nothing (see retire()).
        if (this.#state === "stopping" && this.#running.size === 0 && this.#exited) this.#post({ t: "stop" });
        if (!msg.skipped) {
          this.completed++;
          this.completedSinceStart++;
          this.earlyDeaths = 0;
        }
        listener.onResult(this, msg);
      } else if (msg.t === "started" || msg.t === "taken") {
        this.#handOver(msg.a, msg.t === "taken" && msg.ok);
      } else if (msg.t === "ckpt") {
        if (this.#running.has(msg.a)) listener.onCheckpoint(this, msg);
      } else if (msg.t === "mem") {
        this.#memoryQueries.answer(msg.q, { heapUsed: msg.heapUsed, rss: msg.rss });
      }
    }
  }

  /** The held attempt `a` was started here (`won` false) or taken back (`won`): the node may hold another. */
  #handOver(a: number, won: boolean): void {
    if (a !== this.#held) return; // a late answer about an attempt already settled
    this.#held = 0;
    this.#taking = false;
    if (won && this.#running.delete(a)) {
      if (this.#running.size === 0) this.busySince = 0;
      this.#options.listener.onTakenBack(this, a);
    } else {
      this.#options.listener.onCanHold(this);
    }
  }

  #onExit(info: ExitInfo, runningNow: number[] | null | "any"): void {
    // Attempt ids grow in dispatch order and a node starts its attempts in arrival order:
    // sorted, when the transport cannot say which were running (`ran` null), the first
    // `capacity` of these were, and the rest still waiting.
    const lost = [...this.#running].sort((x, y) => x - y);
    const ran = runningNow === "any" ? lost : runningNow;
    this.#running.clear();
    this.#held = 0;
    this.#taking = false;
    this.expectedMs = 0;
    this.#outbox = [];
    this.lastExit = info;
    this.#memoryQueries.failAll();
    if (this.#state === "stopping") {
      this.#state = "stopped";
    } else {
      this.#state = "down";
      this.crashes++;
      if (this.completedSinceStart === 0) this.earlyDeaths++;
    }
    this.#options.listener.onExit(this, info, lost, ran);
    this.#settleStop();
  }

  #settleStop(): void {
    if (this.#state === "stopping") this.#state = "stopped";
    this.#exited?.();
    this.#exited = null;
  }

  /** Everything posted in one turn of the event loop goes out as one batch, in that turn's pass (flush-pass.ts). */
  #post(msg: ToNode): void {
    if (this.#outbox.push(msg) === 1) flushInPass(this.#flush);
  }

  readonly #flush = (): void => this.#send(false);

  /** Sends the outbox; `now`: past every batching on the way (an abort, a take), not in the turn's pass. */
  #send(now: boolean): void {
    const batch = this.#outbox;
    this.#outbox = [];
    if (batch.length === 0 || !this.#transport) return;
    try {
      this.#transport.post(batch, now);
    } catch {
      // A payload that cannot cross (nested past the serialiser's stack, or not
      // cloneable): send one at a time, so only that request fails, and never the primary.
      for (const msg of batch) this.#postAlone(msg, now);
    }
  }

  #postAlone(msg: ToNode, now: boolean): void {
    try {
      this.#transport?.post([msg], now);
    } catch (err) {
      const result = unsendable(msg, err);
      if (result) this.#receive([result]);
    }
  }
}
