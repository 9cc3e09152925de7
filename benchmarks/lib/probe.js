// An in-process cluster for the recovery scenario, with the hooks it measures through:
// the primary's clock at a kill and when a node is back up. Times are epoch ms with
// sub-ms precision (performance.timeOrigin + now), the clock the handlers report in.
import { fileURLToPath } from "node:url";
import { createCluster } from "../../dist/index.js";

export const HANDLERS = fileURLToPath(new URL("../handlers/", import.meta.url));
export const now = () => performance.timeOrigin + performance.now();

export async function probeCluster({ threads = 0, processes = 0 }) {
  const cluster = await createCluster({ handlers: HANDLERS, threads, processes, logLevel: "silent" });
  const size = threads + processes;
  const upWaiters = [];
  const hooks = { checkpointStored: null, attemptStarted: null };
  cluster.observe({
    nodeRestarted: () => {
      const at = now();
      for (const resolve of upWaiters.splice(0)) resolve(at);
    },
    checkpointStored: (job) => hooks.checkpointStored?.(job),
    attemptStarted: (job, node) => hooks.attemptStarted?.(job, node),
  });
  return {
    cluster,
    hooks,
    /** Resolves with the time the next node comes back up. */
    nextRestart: () => new Promise((resolve) => upWaiters.push(resolve)),
    /** Kills a node by id; returns the kill time. */
    kill(id) {
      const at = now();
      if (!cluster.killNode(id)) throw new Error(`node ${id} was not up`);
      return at;
    },
    /**
     * One echo per node, sent together so each lands on a different idle node: every node
     * has then answered a request since it started, so its next death restarts it at once
     * (no crash-loop backoff) and the measurement is of recovery, not of backoff.
     */
    warm: () => Promise.all(Array.from({ length: size }, () => cluster.run("echo", 0))),
    close: () => cluster.close(),
  };
}
