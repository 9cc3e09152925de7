/**
 * How `crew start` answers signals. Installed before any node starts, so no signal ever
 * kills the primary by its default action (exit 143 and no log line):
 *
 * - SIGINT / SIGTERM while the nodes load: stop what started, exit 0.
 * - SIGINT / SIGTERM once up: drain (stop accepting, finish in-flight work up to
 *   --drain-timeout-ms, answer the rest E_SHUTTING_DOWN, stop the nodes), exit 0. While
 *   draining, a log line every DRAIN_LOG_INTERVAL_MS says what it still waits for.
 * - A second SIGINT / SIGTERM during the drain: what is left answers E_SHUTTING_DOWN now,
 *   nodes stop without grace, exit 1. A third exits at once.
 * - SIGHUP: reload the handlers (see onSighup).
 */
import type { Logger } from "pino";
import type { Cluster } from "../primary/cluster.js";

/** How often a drain logs what it waits for. */
export const DRAIN_LOG_INTERVAL_MS = 5000;

type Signal = "SIGINT" | "SIGTERM" | "SIGHUP";

export class SignalControl {
  readonly #log: Logger;
  /** How long to wait for nodes still loading before exiting without them. */
  readonly #startGraceMs: number;
  #cluster: Cluster | null = null;
  #starting: Promise<Cluster> | null = null;
  #signals = 0;

  constructor(log: Logger, startGraceMs: number) {
    this.#log = log;
    this.#startGraceMs = startGraceMs;
    process.on("SIGINT", () => this.#stop("SIGINT"));
    process.on("SIGTERM", () => this.#stop("SIGTERM"));
    process.on("SIGHUP", () => this.onSighup());
  }

  /** The cluster being created; a signal before it is up stops it once it settles. */
  starting(cluster: Promise<Cluster>): Promise<Cluster> {
    this.#starting = cluster;
    cluster.then((c) => (this.#cluster = c), () => {});
    return cluster;
  }

  /** Whether a stop signal has come (then the caller must not listen). */
  get stopping(): boolean {
    return this.#signals > 0;
  }

  /**
   * SIGHUP reloads the handlers with no downtime (`crew reload`); a folder that does not
   * load is logged and the old code serves on. Before the cluster is up, or while it
   * drains, SIGHUP is logged and ignored.
   */
  onSighup(): void {
    if (!this.#cluster || this.stopping) return void this.#log.warn({ signal: "SIGHUP" }, "SIGHUP ignored: the cluster is not serving");
    this.#cluster.reload("SIGHUP").catch(() => {}); // the reloader logs the failure
  }

  #stop(signal: Signal): void {
    this.#signals++;
    if (this.#signals === 1) return void this.#firstStop(signal);
    if (this.#signals === 2 && this.#cluster) {
      this.#log.warn({ signal }, "second signal: ending the drain; what is left answers E_SHUTTING_DOWN");
      return void this.#cluster.closeNow().then(() => this.#exit(1), (err: unknown) => this.#fail(err));
    }
    this.#log.warn({ signal }, "signal received again: exiting now");
    this.#exit(1);
  }

  #firstStop(signal: Signal): void {
    if (this.#cluster) return this.#drain(signal, this.#cluster);
    if (!this.#starting) return void this.#exit(0);
    this.#log.info({ signal }, "signal received while the nodes were starting: stopping them");
    // Nodes that do not finish loading within the grace end with the process: thread nodes
    // with it, process nodes when their IPC channel closes.
    const grace = setTimeout(() => {
      this.#log.info({ waitedMs: this.#startGraceMs }, "nodes still loading: exiting without them");
      this.#exit(0);
    }, this.#startGraceMs);
    this.#starting.then(
      (cluster) => cluster.close().then(() => this.#exit(0, "stopped before serving")),
      () => this.#exit(0, "stopped before serving"),
    ).finally(() => clearTimeout(grace));
  }

  #drain(signal: Signal, cluster: Cluster): void {
    this.#log.info({ signal }, "signal received: draining");
    const startedAt = Date.now();
    const progress = setInterval(() => {
      void cluster.status().then((s) => {
        const busy = s.nodes.filter((n) => n.inFlight > 0).map((n) => `${n.id}:${n.inFlight}`);
        this.#log.info(
          { active: s.requests.active, queued: s.queue.length, busyNodes: busy, waitedMs: Date.now() - startedAt, drainTimeoutMs: cluster.options.drainTimeoutMs },
          `draining: waiting for ${s.requests.active} request(s)`,
        );
      });
    }, DRAIN_LOG_INTERVAL_MS);
    progress.unref();
    cluster.close().then(
      () => {
        clearInterval(progress);
        if (this.#signals === 1) this.#exit(0);
      },
      (err: unknown) => this.#fail(err),
    );
  }

  #fail(err: unknown): void {
    this.#log.error({ err }, "shutdown failed");
    this.#exit(1);
  }

  /** pino writes synchronously to stdout by default, so the last line is out before exit. */
  #exit(code: number, msg?: string): void {
    if (msg) this.#log.info(msg);
    process.exit(code);
  }
}
