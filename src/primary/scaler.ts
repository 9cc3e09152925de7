/**
 * Elastic nodes (`--threads MIN..MAX`, `--processes MIN..MAX`): adds a node, up to MAX,
 * while a request has waited longer than scaleUpMs for one, and stops a node idle for
 * idleTimeoutMs, down to MIN. It looks every SCALE_TICK of its own timer, so it costs the
 * request path nothing; one node is added at a time, and none while a reload runs.
 *
 * Memory bounds growth as well as MAX: a node is added only while the machine has at
 * least min(nodeMemoryMb, MIN_FREE_MB) MiB free (os.freemem). A node that cannot start
 * (a handler file broken on disk, no memory for a thread or process, spawn failing) is
 * logged ("scale up failed") and growth pauses, backing off like node restarts
 * (restartBackoffMs doubling to restartBackoffMaxMs); the requests keep waiting for the
 * nodes there are, bounded by maxQueue and their deadlines as always.
 */
import { freemem } from "node:os";
import type { Logger } from "pino";
import type { ComputeNode } from "../nodes/compute-node.js";
import type { NodeKind } from "../nodes/messages.js";
import type { ResolvedOptions } from "../options.js";
import type { Dispatcher } from "./dispatcher.js";
import type { Supervisor } from "./supervisor.js";

/** Free memory a new node needs besides its cap, at least, in MiB. */
export const MIN_FREE_MB = 256;
const MIB = 1024 * 1024;

type Options = Pick<ResolvedOptions, "threads" | "maxThreads" | "processes" | "maxProcesses" | "scaleUpMs" | "idleTimeoutMs" | "nodeMemoryMb" | "restartBackoffMs" | "restartBackoffMaxMs">;

/** Whether the options ask for elastic nodes at all. */
export function isElastic(o: Pick<ResolvedOptions, "threads" | "maxThreads" | "processes" | "maxProcesses">): boolean {
  return o.maxThreads > o.threads || o.maxProcesses > o.processes;
}

export class Scaler {
  readonly #options: Options;
  readonly #supervisor: Supervisor;
  readonly #dispatcher: Dispatcher;
  readonly #log: Logger;
  readonly #paused: () => boolean;
  readonly #timer: NodeJS.Timeout;
  /** Per node: when it was last seen busy or answering, and its answer count then. */
  readonly #seen = new Map<ComputeNode, { at: number; completed: number }>();
  #adding = false;
  #failures = 0;
  #holdUntil = 0;
  #lowMemoryLogged = false;

  /** `paused`: true while growth and shrinking must wait (a reload replacing nodes). */
  constructor(deps: { options: Options; supervisor: Supervisor; dispatcher: Dispatcher; log: Logger; paused: () => boolean }) {
    this.#options = deps.options;
    this.#supervisor = deps.supervisor;
    this.#dispatcher = deps.dispatcher;
    this.#log = deps.log;
    this.#paused = deps.paused;
    const tickMs = Math.max(5, Math.min(250, Math.floor(deps.options.scaleUpMs / 2)));
    this.#timer = setInterval(() => this.#tick(), tickMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  #tick(): void {
    if (this.#paused()) return;
    const now = performance.now();
    if (!this.#adding && now >= this.#holdUntil) {
      const kind = this.#kindToAdd(now);
      if (kind) this.#add(kind);
    }
    this.#retireIdle(now);
  }

  /** The kind of node a request waiting too long needs, when one more of it is allowed. */
  #kindToAdd(now: number): NodeKind | null {
    // Requests held ahead in a busy node wait as surely as queued ones.
    for (const job of [...this.#dispatcher.waitingHeads(), ...this.#dispatcher.heldAhead()]) {
      if (!job || now - job.submittedAt <= this.#options.scaleUpMs) continue;
      const kinds: NodeKind[] = job.spec.isolation === "process" ? ["process"] : job.spec.prefer === "process" ? ["process", "thread"] : ["thread", "process"];
      const kind = kinds.find((k) => this.#count(k) < this.#max(k));
      if (kind) return kind;
    }
    return null;
  }

  #add(kind: NodeKind): void {
    const needMb = Math.min(this.#options.nodeMemoryMb, MIN_FREE_MB);
    const freeMb = Math.floor(freemem() / MIB);
    if (freeMb < needMb) {
      if (!this.#lowMemoryLogged) this.#log.warn({ kind, freeMb, needMb }, "scale up held: too little free memory for another node");
      this.#lowMemoryLogged = true;
      return;
    }
    this.#lowMemoryLogged = false;
    this.#adding = true;
    const before = this.#count(kind);
    this.#supervisor.add(kind).then(
      (node) => {
        this.#adding = false;
        this.#failures = 0;
        this.#log.info({ node: node.id, kind, nodes: before + 1, max: this.#max(kind), queued: this.#dispatcher.queueLength }, "scaled up");
      },
      (err: Error) => {
        this.#adding = false;
        this.#failures++;
        const { restartBackoffMs, restartBackoffMaxMs } = this.#options;
        const holdMs = Math.min(restartBackoffMaxMs, restartBackoffMs * 2 ** (this.#failures - 1));
        this.#holdUntil = performance.now() + holdMs;
        this.#log.error({ kind, err: err.message, holdMs, nodes: before }, "scale up failed: serving with the nodes there are");
      },
    );
  }

  /** Stops one node idle past idleTimeoutMs per tick, keeping MIN of its kind. */
  #retireIdle(now: number): void {
    let candidate: ComputeNode | null = null;
    let idleSince = Infinity;
    for (const node of this.#supervisor.nodes) {
      if (node.state !== "up") continue;
      const seen = this.#seen.get(node);
      if (!seen || node.inFlight > 0 || node.completed !== seen.completed) {
        this.#seen.set(node, { at: now, completed: node.completed });
        continue;
      }
      if (now - seen.at >= this.#options.idleTimeoutMs && seen.at < idleSince && this.#count(node.kind) > this.#min(node.kind)) {
        candidate = node;
        idleSince = seen.at;
      }
    }
    for (const node of this.#seen.keys()) if (node.state === "stopped") this.#seen.delete(node);
    if (!candidate) return;
    const node = candidate;
    this.#seen.delete(node);
    this.#log.info({ node: node.id, kind: node.kind, idleMs: Math.round(now - idleSince), nodes: this.#count(node.kind) - 1, min: this.#min(node.kind) }, "scaled down");
    this.#supervisor.retire(node, "idle").catch(() => {});
  }

  /** Nodes of `kind` that take work or will (starting, up, down awaiting restart). */
  #count(kind: NodeKind): number {
    let n = 0;
    for (const node of this.#supervisor.nodes) if (node.kind === kind && node.state !== "stopping" && node.state !== "stopped") n++;
    return n;
  }

  #min(kind: NodeKind): number {
    return kind === "thread" ? this.#options.threads : this.#options.processes;
  }

  #max(kind: NodeKind): number {
    return kind === "thread" ? this.#options.maxThreads : this.#options.maxProcesses;
  }
}
