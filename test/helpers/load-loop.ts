/** Continuous load for a test: loops that each send one request after another until stopped. */
export interface LoadTally {
  ok: number;
  failed: Array<string>;
  stop(): Promise<void>;
}

/**
 * Starts `loops` loops calling `send` back to back; `send` resolves with null for a good
 * reply and with a description for a bad one (or throws). stop() ends them and waits.
 */
export function keepLoaded(loops: number, send: () => Promise<string | null>): LoadTally {
  let running = true;
  const tally = {
    ok: 0,
    failed: [] as string[],
    stop: async () => {
      running = false;
      await Promise.all(workers);
    },
  };
  const loop = async () => {
    while (running) {
      try {
        const bad = await send();
        if (bad === null) tally.ok++;
        else tally.failed.push(bad);
      } catch (err) {
        tally.failed.push((err as Error).message);
      }
    }
  };
  const workers = Array.from({ length: loops }, loop);
  return tally;
}
