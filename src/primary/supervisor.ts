/**
 * Node supervision: starts the nodes, logs and counts every crash, and restarts a dead
 * node under the same id, backing off exponentially while it keeps dying before it
 * answers anything (a node that answered a request restarts at once).
 */
import type { Logger } from "pino";
import { HandlerLoadError, ShuttingDownError } from "../errors.js";
import { ComputeNode, NodeStartError } from "../nodes/compute-node.js";
import type { CheckpointMsg, HandlerConfig, NodeKind, ResultMsg } from "../nodes/messages.js";
import type { NodeListener } from "../nodes/compute-node.js";
import { createProcessTransport } from "../nodes/process-transport.js";
import { ThreadHost } from "../nodes/thread-host.js";
import type { ExitInfo, TransportFactory } from "../nodes/transport.js";
import type { ResolvedOptions } from "../options.js";
import type { Dispatcher } from "./dispatcher.js";
import type { HandlerSet } from "./handler-registry.js";
import type { ClusterObserver } from "./observer.js";

export class Supervisor {
  readonly nodes: ComputeNode[] = [];
  readonly #options: ResolvedOptions;
  readonly #log: Logger;
  readonly #restartTimers = new Set<NodeJS.Timeout>();
  #dispatcher: Dispatcher | null = null;
  #stopping = false;
  /** The process hosting the thread nodes (threadHost "process"), or null. */
  readonly #threadHost: ThreadHost | null;
  /** Where a thread node starts: in the host process, or in this one (threadHost "primary"). */
  readonly #threadTransport: TransportFactory;
  observer: ClusterObserver = {};

  /** The handlers a node started from now on loads (a reload replaces it). */
  #handlers: HandlerSet;
  readonly #nextIndex: Record<NodeKind, number> = { thread: 0, process: 0 };
  readonly #listener: NodeListener;

  /**
   * A supervisor for `options`' nodes (not started: start()). piscina is imported only
   * when thread nodes run in this process (threadHost "primary"): with the default host
   * process, the primary never loads it (~20 ms of a start).
   */
  static async create(options: ResolvedOptions, handlers: HandlerSet, log: Logger): Promise<Supervisor> {
    if (options.threadHost === "process") {
      const host = new ThreadHost(log);
      return new Supervisor(options, handlers, log, host.transport, host);
    }
    const { createThreadTransport } = await import("../nodes/thread-transport.js");
    return new Supervisor(options, handlers, log, createThreadTransport, null);
  }

  private constructor(options: ResolvedOptions, handlers: HandlerSet, log: Logger, threadTransport: TransportFactory, threadHost: ThreadHost | null) {
    this.#options = options;
    this.#log = log;
    this.#handlers = handlers;
    this.#listener = {
      onResult: (node: ComputeNode, msg: ResultMsg) => this.#dispatcher?.onResult(node, msg),
      onCheckpoint: (node: ComputeNode, msg: CheckpointMsg) => this.#dispatcher?.onCheckpoint(node, msg),
      onExit: (node: ComputeNode, info: ExitInfo, lost: number[], ran: number[] | null) => this.#onExit(node, info, lost, ran),
      onTakenBack: (node: ComputeNode, a: number) => this.#dispatcher?.onTakenBack(node, a),
      onCanHold: () => this.#dispatcher?.onCanHold(),
    };
    this.#threadHost = threadHost;
    this.#threadTransport = threadTransport;
    for (let i = 0; i < options.threads; i++) this.nodes.push(this.#make("thread"));
    for (let i = 0; i < options.processes; i++) this.nodes.push(this.#make("process"));
  }

  /** A new node of `kind` with the next unused id of that kind (t0, t1 …), running the current handler set. */
  #make(kind: NodeKind, listener: NodeListener = this.#listener, id = `${kind === "thread" ? "t" : "p"}${this.#nextIndex[kind]++}`): ComputeNode {
    const options = this.#options;
    return new ComputeNode({
      id,
      kind,
      capacity: options.nodeConcurrency,
      memoryMb: options.nodeMemoryMb,
      startTimeoutMs: options.nodeStartTimeoutMs,
      frozenMs: options.frozenNodeMs,
      init: {
        handlers: this.#handlers.files,
        compiled: this.#handlers.compiled,
        logLevel: this.#log.level,
        maxCheckpointBytes: options.maxCheckpointBytes,
        maxResultBytes: options.maxResultBytes,
        concurrency: options.nodeConcurrency,
      },
      versions: this.#handlers.versions,
      transport: kind === "thread" ? this.#threadTransport : createProcessTransport,
      listener,
      log: this.#log,
    });
  }

  attach(dispatcher: Dispatcher): void {
    this.#dispatcher = dispatcher;
  }

  /** Starts every node; resolves with the handler configs, or fails naming the handler that did not load. */
  async start(): Promise<Record<string, HandlerConfig>> {
    const results = await Promise.allSettled(this.nodes.map((node) => this.#start(node)));
    const failure = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failure) {
      await this.stop(0);
      const err = failure.reason as Error;
      throw startFailure(err);
    }
    // A gateway host (--redis, no nodes) loads no handler code: the defaults apply.
    return (results[0] as PromiseFulfilledResult<Record<string, HandlerConfig>> | undefined)?.value ?? {};
  }

  /** Kills a node by id (the admin endpoint, chaos tests); it is restarted like any crashed node. */
  kill(id: string): boolean {
    const node = this.nodes.find((n) => n.id === id);
    if (!node || node.state !== "up") return false;
    this.#log.warn({ node: id }, "killing node on request");
    this.observer.nodeKilled?.(node);
    node.kill();
    return true;
  }

  /** Nodes started from now on (added, replacing, restarted) load this handler set. */
  useHandlers(set: HandlerSet): void {
    this.#handlers = set;
  }

  /**
   * Loads handler set `set` in a throwaway node that never takes a request: resolves
   * with the handler configs, or rejects with HandlerLoadError naming the file that failed.
   */
  async probe(set: HandlerSet): Promise<Record<string, HandlerConfig>> {
    const kind: NodeKind = this.nodes.some((n) => n.kind === "thread") || this.nodes.length === 0 ? "thread" : "process";
    const quiet: NodeListener = { onResult: () => {}, onCheckpoint: () => {}, onExit: () => {}, onTakenBack: () => {}, onCanHold: () => {} };
    const current = this.#handlers;
    this.#handlers = set;
    const node = this.#make(kind, quiet, "probe");
    this.#handlers = current;
    try {
      return await node.start();
    } catch (err) {
      throw startFailure(err as Error);
    } finally {
      await node.stop(this.#options.killGraceMs);
    }
  }

  /**
   * Adds a node of `kind` running the current handler set and starts it; it takes work once
   * up. Resolves with it, or rejects (the node removed) when it cannot start.
   */
  async add(kind: NodeKind): Promise<ComputeNode> {
    if (this.#stopping) throw new ShuttingDownError("the cluster is stopping");
    const node = this.#make(kind);
    this.nodes.push(node);
    try {
      await this.#start(node);
    } catch (err) {
      this.#remove(node);
      await node.stop(0);
      throw startFailure(err as Error);
    }
    if (this.#stopping) return node;
    this.observer.event?.({ kind: "node-added", node: node.id, message: `${node.id} (${node.kind}) added` });
    this.#dispatcher?.nodeUp();
    return node;
  }

  /** Retires a node (see ComputeNode.retire): no new work, finishes what it holds, stops, leaves the list. */
  async retire(node: ComputeNode, reason: string): Promise<void> {
    this.#log.info({ node: node.id, kind: node.kind, inFlight: node.inFlight, reason }, "node retiring");
    const done = node.retire();
    this.#dispatcher?.nodeUp(); // balancers forget it now
    await done;
    this.#remove(node);
    this.#dispatcher?.nodeUp();
    this.#log.info({ node: node.id, kind: node.kind, reason }, "node retired");
    this.observer.event?.({ kind: "node-removed", node: node.id, message: `${node.id} (${node.kind}) retired (${reason})` });
  }

  #remove(node: ComputeNode): void {
    const i = this.nodes.indexOf(node);
    if (i >= 0) this.nodes.splice(i, 1);
  }

  async stop(graceMs: number): Promise<void> {
    this.#stopping = true;
    for (const timer of this.#restartTimers) clearTimeout(timer);
    this.#restartTimers.clear();
    await Promise.all(this.nodes.map((node) => node.stop(graceMs)));
    // Threads given up on (blocked in native code) die with their host, now.
    this.#threadHost?.close();
  }

  async #start(node: ComputeNode): Promise<Record<string, HandlerConfig>> {
    const configs = await node.start();
    if (this.#stopping) return configs;
    this.#log.info({ node: node.id, kind: node.kind, pid: node.pid, threadId: node.threadId, restarts: node.restarts }, "node up");
    return configs;
  }

  #onExit(node: ComputeNode, info: ExitInfo, lost: number[], ran: number[] | null): void {
    // A node stopped on purpose may still hold attempts abandoned in the drain: the
    // dispatcher ends them (and their grace timers), without a crash or a restart.
    if (node.state === "stopped") {
      if (lost.length > 0) this.#log.warn({ node: node.id, kind: node.kind, pid: node.pid, code: info.code, signal: info.signal, reason: info.reason, toRetry: lost.length }, "stopping node died: its requests run again elsewhere");
      return void this.#dispatcher?.nodeLost(node, info, lost, ran);
    }
    this.#log.warn(
      { node: node.id, kind: node.kind, pid: node.pid, threadId: node.threadId, code: info.code, signal: info.signal, reason: info.reason, toRetry: lost.length, crashes: node.crashes },
      "node crashed",
    );
    this.observer.nodeCrashed?.(node, info);
    this.#dispatcher?.nodeLost(node, info, lost, ran);
    this.#scheduleRestart(node);
  }

  #scheduleRestart(node: ComputeNode): void {
    if (this.#stopping) return;
    const { restartBackoffMs, restartBackoffMaxMs } = this.#options;
    const delayMs = node.earlyDeaths === 0 ? 0 : Math.min(restartBackoffMaxMs, restartBackoffMs * 2 ** (node.earlyDeaths - 1));
    this.#log.info({ node: node.id, delayMs, earlyDeaths: node.earlyDeaths }, "node restarting");
    const timer = setTimeout(() => {
      this.#restartTimers.delete(timer);
      if (node.state === "stopped") return; // retired while down: its replacement serves
      this.#start(node).then(
        () => {
          if (this.#stopping) return;
          this.observer.nodeRestarted?.(node);
          this.#dispatcher?.nodeUp();
        },
        (err: Error) => {
          if (this.#stopping) return;
          node.earlyDeaths++;
          this.#log.error({ node: node.id, err: err.message }, "node failed to restart");
          this.#scheduleRestart(node);
        },
      );
    }, delayMs);
    this.#restartTimers.add(timer);
  }
}

/** A node that did not start, as HandlerLoadError: naming the handler file when one failed to load. */
function startFailure(err: Error): Error {
  if (err instanceof HandlerLoadError) return err;
  if (err instanceof NodeStartError && err.file) return new HandlerLoadError(err.message, { cause: err });
  return new HandlerLoadError(`a node failed to start: ${err.message}`, { cause: err });
}
