/**
 * `--watch`: reloads the cluster when anything in the handlers folder (subfolders too)
 * changes. Editors save in bursts (write, rename, chmod), so a reload starts only after
 * WATCH_DEBOUNCE_MS without a change. A folder that does not load is logged by the
 * reloader and the old code keeps serving; the next save tries again.
 */
import { type FSWatcher, watch } from "node:fs";
import type { Logger } from "pino";

/** Quiet time after the last change before a reload starts, in ms. */
export const WATCH_DEBOUNCE_MS = 150;

/**
 * Watches `dir` and calls `reload` once per burst of changes. Returns a function that stops
 * watching. fs.watch with `recursive` (Node ≥ 20 on Linux, macOS, Windows).
 */
export function watchHandlers(dir: string, reload: () => Promise<unknown>, log: Logger): () => void {
  let timer: NodeJS.Timeout | null = null;
  let watcher: FSWatcher;
  const fire = () => {
    timer = null;
    reload().catch(() => {}); // the reloader logs why; the old code keeps serving
  };
  try {
    watcher = watch(dir, { recursive: true, persistent: false }, (_event, file) => {
      log.debug({ file }, "handlers folder changed");
      if (timer) clearTimeout(timer);
      timer = setTimeout(fire, WATCH_DEBOUNCE_MS);
    });
  } catch (err) {
    log.error({ dir, err: (err as Error).message }, "--watch cannot watch the handlers folder");
    return () => {};
  }
  watcher.on("error", (err) => log.error({ dir, err: err.message }, "--watch stopped watching the handlers folder"));
  log.info({ dir, debounceMs: WATCH_DEBOUNCE_MS }, "watching the handlers folder");
  return () => {
    if (timer) clearTimeout(timer);
    watcher.close();
  };
}
