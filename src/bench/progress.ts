/**
 * Live progress of a load run: a cli-progress bar on a terminal, and one plain line a
 * second otherwise (CI logs, pipes), so a log never fills with carriage returns.
 * The rate shown is over the last tick, not since the start: it shows a dip as it happens.
 */
import { SingleBar } from "cli-progress";
import type { LoadProgress } from "./load.js";

export interface ProgressOptions {
  stream: NodeJS.WritableStream & { isTTY?: boolean };
  /** What the run stops at: a request count or a duration. */
  goal: { requests: number } | { durationMs: number };
  read: () => LoadProgress;
  /** Overrides the stream's isTTY (tests). */
  tty?: boolean;
}

export interface Progress {
  stop(): void;
}

const BAR_TICK_MS = 200;
const LINE_TICK_MS = 1000;

export function startProgress(options: ProgressOptions): Progress {
  const tty = options.tty ?? options.stream.isTTY === true;
  return tty ? barProgress(options) : lineProgress(options);
}

/** Requests per second since the previous call. */
function rateMeter(read: () => LoadProgress): () => { now: LoadProgress; rate: number } {
  let last = read();
  return () => {
    const now = read();
    const dt = now.elapsedMs - last.elapsedMs;
    const rate = dt > 0 ? ((now.completed - last.completed) * 1000) / dt : 0;
    last = now;
    return { now, rate };
  };
}

function goalValue(goal: ProgressOptions["goal"], p: LoadProgress): number {
  return "requests" in goal ? p.completed + p.failed : Math.min(goal.durationMs, Math.round(p.elapsedMs));
}

function barProgress({ stream, goal, read }: ProgressOptions): Progress {
  const bar = new SingleBar({
    stream,
    format: "{bar} {percentage}% | {ok} ok | {rate} req/s | {failed} failed | {retried} retried",
    barsize: 30,
    hideCursor: true,
    clearOnComplete: true,
  });
  const meter = rateMeter(read);
  const total = "requests" in goal ? goal.requests : goal.durationMs;
  const fields = (p: LoadProgress, rate: number) => ({
    ok: p.completed.toLocaleString("en-US"),
    rate: Math.round(rate).toLocaleString("en-US"),
    failed: p.failed.toLocaleString("en-US"),
    retried: p.retried.toLocaleString("en-US"),
  });
  bar.start(total, 0, fields(read(), 0));
  const timer = setInterval(() => {
    const { now, rate } = meter();
    bar.update(goalValue(goal, now), fields(now, rate));
  }, BAR_TICK_MS);
  return {
    stop() {
      clearInterval(timer);
      bar.stop();
    },
  };
}

function lineProgress({ stream, read }: ProgressOptions): Progress {
  const meter = rateMeter(read);
  const timer = setInterval(() => {
    const { now, rate } = meter();
    stream.write(
      `bench ${(now.elapsedMs / 1000).toFixed(1)}s  ${now.completed.toLocaleString("en-US")} ok  ` +
        `${Math.round(rate).toLocaleString("en-US")} req/s  ${now.failed} failed  ${now.retried} retried\n`,
    );
  }, LINE_TICK_MS);
  return {
    stop() {
      clearInterval(timer);
    },
  };
}
