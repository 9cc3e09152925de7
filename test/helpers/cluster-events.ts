/** A cluster's observer hooks as events, so tests wait for what happened instead of sleeping. */
import { EventEmitter } from "node:events";
import type { Cluster } from "crew";

export function watch(c: Cluster): EventEmitter {
  const emitter = new EventEmitter();
  c.observe({
    attemptStarted: (job, node) => emitter.emit("attemptStarted", job, node),
    requestDone: (job, outcome) => emitter.emit("requestDone", job, outcome),
    nodeRestarted: (node) => emitter.emit("nodeRestarted", node),
  });
  return emitter;
}

/** Resolves with the arguments of the first `name` event that `pred` accepts. */
export function waitFor(emitter: EventEmitter, name: string, pred: (...args: any[]) => boolean = () => true): Promise<any[]> {
  return new Promise((resolve) => {
    const on = (...args: any[]) => {
      if (!pred(...args)) return;
      emitter.off(name, on);
      resolve(args);
    };
    emitter.on(name, on);
  });
}
