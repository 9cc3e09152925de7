/**
 * Zero-downtime reload: reads the handlers folder again, loads it once in a throwaway
 * node (a folder that does not load stops here, and the old nodes keep serving), then
 * replaces the nodes one at a time. Each new node is up before an old one stops taking
 * work, and an old node finishes everything it holds before it stops, so the cluster
 * never has fewer nodes taking work than before and no request fails because of it.
 * A fresh thread or process is the only way to run new ESM code: `import()` in the same
 * thread returns the module it cached.
 */
import type { Logger } from "pino";
import { CrewError, HandlerLoadError, UnknownHandlerError } from "../errors.js";
import type { ComputeNode } from "../nodes/compute-node.js";
import type { Dispatcher } from "./dispatcher.js";
import { type HandlerRegistry, type HandlerSet, readHandlerSet } from "./handler-registry.js";
import { compileHandlers } from "./transpile.js";
import type { Supervisor } from "./supervisor.js";

/** What a finished reload did. Names and versions (file content hashes) of the handlers now served. */
export interface ReloadResult {
  versions: Record<string, string>;
  added: string[];
  removed: string[];
  changed: string[];
  /** Old node id → the new node that took its place. */
  replaced: Array<{ from: string; to: string }>;
  ms: number;
}

export class Reloader {
  readonly #dir: string;
  readonly #supervisor: Supervisor;
  readonly #registry: HandlerRegistry;
  readonly #dispatcher: Dispatcher;
  readonly #log: Logger;
  #current: HandlerSet;
  #running: Promise<ReloadResult> | null = null;
  #queued: Promise<ReloadResult> | null = null;

  constructor(deps: { dir: string; current: HandlerSet; supervisor: Supervisor; registry: HandlerRegistry; dispatcher: Dispatcher; log: Logger }) {
    this.#dir = deps.dir;
    this.#current = deps.current;
    this.#supervisor = deps.supervisor;
    this.#registry = deps.registry;
    this.#dispatcher = deps.dispatcher;
    this.#log = deps.log;
  }

  /** True while a reload replaces nodes (the scaler waits meanwhile). */
  get busy(): boolean {
    return this.#running !== null;
  }

  /**
   * Reloads the handlers folder. One reload runs at a time; asked for while one runs, a
   * second one follows it (and later asks share that second one), so the last change on
   * disk is always loaded. Rejects with HandlerLoadError (naming the file) or
   * InvalidOptionError (the folder cannot be read or holds no handler) when the new set does
   * not load; the nodes then keep the code they run.
   */
  reload(reason: string): Promise<ReloadResult> {
    if (this.#queued) return this.#queued;
    if (this.#running) {
      this.#queued = this.#running
        .catch(() => {})
        .then(() => {
          this.#queued = null;
          return this.reload(reason);
        });
      return this.#queued;
    }
    this.#running = this.#run(reason)
      .catch((err: Error) => Promise.reject(err instanceof CrewError ? err : new HandlerLoadError(err.message, { cause: err })))
      .finally(() => (this.#running = null));
    return this.#running;
  }

  async #run(reason: string): Promise<ReloadResult> {
    const started = performance.now();
    const log = this.#log;
    let set: HandlerSet;
    let configs;
    try {
      set = await compileHandlers(readHandlerSet(this.#dir), log);
      log.info({ reason, versions: set.versions, nodes: this.#supervisor.nodes.map((n) => n.id) }, "reload started");
      configs = await this.#supervisor.probe(set);
    } catch (err) {
      log.error({ reason, err: (err as Error).message }, "reload failed: the old handlers keep serving");
      this.#note("reload-failed", `reload (${reason}) failed, the old handlers keep serving: ${(err as Error).message}`);
      throw err;
    }
    this.#supervisor.useHandlers(set);
    const replaced: ReloadResult["replaced"] = [];
    const retiring: Array<Promise<void>> = [];
    const fresh = new Set<ComputeNode>();
    // Every node taking work that does not run the new set, one at a time; a node the
    // scaler added meanwhile (it was starting with the old set) is found on the next look.
    const nextOld = () => this.#supervisor.nodes.find((n) => n.state !== "stopping" && n.state !== "stopped" && !fresh.has(n));
    try {
      for (let old = nextOld(); old; old = nextOld()) {
        const added = await this.#supervisor.add(old.kind);
        fresh.add(added);
        if (replaced.length === 0) this.#registry.offer(set, configs);
        replaced.push({ from: old.id, to: added.id });
        log.info({ reason, from: old.id, to: added.id, kind: old.kind }, "reload: node replaced");
        retiring.push(this.#supervisor.retire(old, "reload"));
      }
    } catch (err) {
      log.error({ reason, replaced, err: (err as Error).message }, "reload stopped: a new node did not start; the nodes not yet replaced keep serving");
      this.#note("reload-failed", `reload (${reason}) stopped after ${replaced.length} nodes: ${(err as Error).message}`);
      throw err;
    } finally {
      this.#withdrawUnserved();
    }
    await Promise.all(retiring);
    const previous = this.#current;
    this.#current = set;
    const result: ReloadResult = {
      versions: { ...set.versions },
      added: names(set).filter((n) => !(n in previous.versions)),
      removed: names(previous).filter((n) => !(n in set.versions)),
      changed: names(set).filter((n) => n in previous.versions && previous.versions[n] !== set.versions[n]),
      replaced,
      ms: Math.round(performance.now() - started),
    };
    log.info({ reason, ...result }, "reload done");
    const what: Array<[string, string[]]> = [["changed", result.changed], ["added", result.added], ["removed", result.removed]];
    const summary = what.filter(([, names]) => names.length > 0).map(([verb, names]) => `${verb} ${names.join(", ")}`).join("; ") || "no handler changed";
    this.#note("reload", `handlers reloaded (${reason}) in ${result.ms} ms: ${summary}; ${replaced.map((r) => `${r.from}→${r.to}`).join(", ")}`);
    return result;
  }

  /** A timeline entry for the dashboard (observer.ts `event`). */
  #note(kind: "reload" | "reload-failed", message: string): void {
    this.#dispatcher.observer.event?.({ kind, message });
  }

  /**
   * Handlers that no node taking work still has stop being offered; their requests still
   * waiting for a node answer E_UNKNOWN_HANDLER (the ones running finish where they are).
   */
  #withdrawUnserved(): void {
    const serving = this.#supervisor.nodes.filter((n) => n.state !== "stopping" && n.state !== "stopped");
    const keep = new Set(serving.flatMap((n: ComputeNode) => n.handlerNames));
    const gone = new Set(this.#registry.withdraw(keep));
    if (gone.size === 0) return;
    this.#log.info({ handlers: [...gone] }, "reload: handlers withdrawn");
    const waiting = [...this.#dispatcher.requests()].filter((job) => (job.state === "queued" || job.state === "parked") && gone.has(job.handler));
    for (const job of waiting) this.#dispatcher.cancel(job, new UnknownHandlerError(`handler ${job.handler} was deleted by a reload`));
  }
}

function names(set: HandlerSet): string[] {
  return Object.keys(set.versions);
}
