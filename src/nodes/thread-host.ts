/**
 * Thread nodes hosted outside the primary: one child process (node-runtime/host-entry.js)
 * runs every thread node's piscina thread, so a V8 out-of-memory abort in a thread, which
 * resourceLimits do not prevent for every allocation shape (nodejs/node#47224), ends that
 * process and never the primary. Its thread nodes then die together, each through the
 * one crash path, and their restarts start a new host. The transports it gives out are
 * plain NodeTransports: ComputeNode and the dispatcher never learn where a thread lives.
 *
 * Cost: every message crosses one more hop (JSON over IPC to the host, then a MessagePort),
 * and the host is a process of its own (~40 MB RSS before any handler); see
 * docs/recovery.md for the figures. A thread blocked in native code (execSync) no longer
 * delays the primary's exit: the host's process group is SIGKILLed at stop.
 */
import type { Logger } from "pino";
import { forkNodeProcess, type NodeProcess, onEnded, processExit } from "./child.js";
import type { FromHost, ToHost } from "./host-messages.js";
import { HOST_ENTRY, HOST_EXEC_ARGV, takePreforked } from "./host-prefork.js";
import { afterPass } from "./flush-pass.js";
import { type FromNode, type ToNode, unsendable } from "./messages.js";
import type { ExitInfo, NodeTransport, TransportEvents, TransportFactory, TransportOptions } from "./transport.js";

interface Hosted {
  events: TransportEvents;
  threadId: number | null;
  ran: number[] | null | "any";
  exited: boolean;
}

/** One life of the host process and the nodes in it. */
class HostProcess {
  readonly nodes = new Map<number, Hosted>();
  readonly #proc: NodeProcess;
  #dead = false;
  #queue: ToHost[] = [];

  constructor(log: Logger, frozenMs: number, onDead: (host: HostProcess) => void) {
    // Raw output (V8's report) cannot be told apart by thread: it names the host.
    // The one `crew start` forked ahead, if it is still there (host-prefork.ts); else a new one.
    const preforked = takePreforked() ?? undefined;
    this.#proc = forkNodeProcess(HOST_ENTRY, { env: process.env, execArgv: HOST_EXEC_ARGV, log, source: { host: "threads" }, frozenMs, child: preforked });
    const { child } = this.#proc;
    log.info({ host: "threads", pid: child.pid, preforked: preforked !== undefined }, "thread host started");
    child.on("message", (batch: FromHost[]) => {
      for (const msg of batch) this.#receive(msg);
    });
    onEnded(this.#proc, (code, signal) => {
      this.#dead = true;
      onDead(this);
      const cause = processExit(code, signal, this.#proc);
      for (const [k, node] of this.nodes) {
        // What the threads ran died with the host, with the results it had not relayed:
        // with lookahead or pipelining, a later attempt may have started after them.
        node.ran = "any";
        this.#exit(k, node, { ...cause, reason: `thread host ${cause.reason}` });
      }
    });
    child.on("error", () => this.#proc.kill());
    child.on("disconnect", () => this.#proc.kill());
  }

  get pid(): number {
    return this.#proc.child.pid ?? -1;
  }

  get dead(): boolean {
    return this.#dead;
  }

  /** Queues `msg`; what every node sent in one turn's pass leaves as one IPC message (flush-pass.ts). */
  send(msg: ToHost): void {
    if (this.#queue.push(msg) === 1) afterPass(this.#flush);
  }

  /** Sends what is queued now, in order, without waiting for the pass. */
  flushNow(): void {
    this.#flush();
  }

  readonly #flush = (): void => {
    const batch = this.#queue;
    this.#queue = [];
    if (batch.length === 0 || this.#dead || !this.#proc.child.connected) return;
    try {
      this.#proc.child.send(batch);
    } catch {
      for (const msg of batch) this.#sendAlone(msg);
    }
  };

  /** A batch JSON cannot hold (a payload with a BigInt or a cycle): message by message, so only that request fails. */
  #sendAlone(msg: ToHost): void {
    const ones: ToHost[] = msg.t === "post" ? msg.msgs.map((m) => ({ t: "post", k: msg.k, msgs: [m] })) : [msg];
    for (const one of ones) {
      try {
        this.#proc.child.send([one]);
      } catch (err) {
        const result = one.t === "post" ? unsendable(one.msgs[0]!, err) : null;
        if (result) this.#receive({ t: "msgs", k: one.k, msgs: [result] });
      }
    }
  }

  kill(): void {
    this.#proc.kill();
  }

  #receive(msg: FromHost): void {
    const node = this.nodes.get(msg.k);
    if (!node || node.exited) return;
    if (msg.t === "msgs") {
      if (msg.threadId !== undefined) node.threadId = msg.threadId;
      node.events.onMessages(msg.msgs as FromNode[]);
    } else {
      node.ran = msg.ran;
      this.#exit(msg.k, node, msg.info);
    }
  }

  #exit(k: number, node: Hosted, info: ExitInfo): void {
    if (node.exited) return;
    node.exited = true;
    this.nodes.delete(k);
    node.events.onExit(info);
  }
}

/**
 * Hands out thread-node transports living in one host process, started when first needed
 * (or adopted then, when `crew start` forked it ahead: host-prefork.ts).
 */
export class ThreadHost {
  readonly #log: Logger;
  #host: HostProcess | null = null;
  #nextKey = 1;

  constructor(log: Logger) {
    this.#log = log;
  }

  readonly transport: TransportFactory = ({ init, memoryMb, frozenMs, events }: TransportOptions): NodeTransport => {
    this.#host ??= new HostProcess(this.#log, frozenMs, (dead) => {
      if (this.#host === dead) this.#host = null;
    });
    const host = this.#host;
    const k = this.#nextKey++;
    const node: Hosted = { events, threadId: null, ran: null, exited: false };
    host.nodes.set(k, node);
    host.send({ t: "open", k, init, memoryMb });
    return {
      kind: "thread",
      get pid() {
        return host.pid;
      },
      get threadId() {
        return node.threadId;
      },
      post(msgs: ToNode[], now = false) {
        if (node.exited) return;
        host.send({ t: "post", k, msgs });
        if (now) host.flushNow();
      },
      kill() {
        if (!node.exited) host.send({ t: "kill", k });
      },
      runningNow: () => node.ran,
      // The host answers `take` for the primary: its thread transport does the swap (thread-transport.ts).
      lookahead: true,
    };
  };

  /** Ends the host process and everything it started, at once (after the nodes were stopped). */
  close(): void {
    this.#host?.kill();
    this.#host = null;
  }
}
