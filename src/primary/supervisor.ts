/**
 * Node supervision: starts the nodes, logs and counts every crash, and restarts a dead
 * node under the same id, backing off exponentially while it keeps dying before it
 * answers anything (a node that answered a request restarts at once).
 */
import type { Logger } from "pino";
import { HandlerLoadError } from "../errors.js";
import { ComputeNode, NodeStartError } from "../nodes/compute-node.js";
import type { CheckpointMsg, HandlerConfig, NodeKind, ResultMsg } from "../nodes/messages.js";
import { createProcessTransport } from "../nodes/process-transport.js";
import { ThreadHost } from "../nodes/thread-host.js";
import { createThreadTransport } from "../nodes/thread-transport.js";
import type { ExitInfo } from "../nodes/transport.js";
import type { ResolvedOptions } from "../options.js";
import type { Dispatcher } from "./dispatcher.js";
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
  observer: ClusterObserver = {};

  constructor(options: ResolvedOptions, handlerFiles: Record<string, string>, log: Logger) {
    this.#options = options;
    this.#log = log;
    const listener = {
      onResult: (node: ComputeNode, msg: ResultMsg) => this.#dispatcher?.onResult(node, msg),
      onCheckpoint: (node: ComputeNode, msg: CheckpointMsg) => this.#dispatcher?.onCheckpoint(node, msg),
      onExit: (node: ComputeNode, info: ExitInfo, lost: number[], ran: number[] | null) => this.#onExit(node, info, lost, ran),
    };
    const threadIds = Array.from({ length: options.threads }, (_, i) => `t${i}`);
    this.#threadHost = options.threadHost === "process" && options.threads > 0 ? new ThreadHost(log, threadIds) : null;
    const threadTransport = this.#threadHost?.transport ?? createThreadTransport;
    const add = (kind: NodeKind, count: number) => {
      for (let i = 0; i < count; i++) {
        this.nodes.push(
          new ComputeNode({
            id: `${kind === "thread" ? "t" : "p"}${i}`,
            kind,
            capacity: options.nodeConcurrency,
            memoryMb: options.nodeMemoryMb,
            startTimeoutMs: options.nodeStartTimeoutMs,
            init: {
              handlers: handlerFiles,
              logLevel: log.level,
              maxCheckpointBytes: options.maxCheckpointBytes,
              maxResultBytes: options.maxResultBytes,
              concurrency: options.nodeConcurrency,
            },
            transport: kind === "thread" ? threadTransport : createProcessTransport,
            listener,
            log,
          }),
        );
      }
    };
    add("thread", options.threads);
    add("process", options.processes);
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
      if (err instanceof NodeStartError && err.file) throw new HandlerLoadError(err.message, { cause: err });
      throw new HandlerLoadError(`a node failed to start: ${err.message}`, { cause: err });
    }
    return (results[0] as PromiseFulfilledResult<Record<string, HandlerConfig>>).value;
  }

  /** Kills a node by id (the admin endpoint, chaos tests); it is restarted like any crashed node. */
  kill(id: string): boolean {
    const node = this.nodes.find((n) => n.id === id);
    if (!node || node.state !== "up") return false;
    this.#log.warn({ node: id }, "killing node on request");
    node.kill();
    return true;
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
    if (node.state === "stopped") return void this.#dispatcher?.nodeLost(node, info, lost, ran);
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
