/**
 * `crew bench --chaos kill-every=500ms`: while the load runs, kill a random node that is
 * up on that interval, through the HTTP front's admin endpoint (POST /v1/nodes/:id/kill;
 * SIGKILL for a process node, terminate for a thread node), and measure what it costs.
 *
 * Recovery latency, as measured here: for each request that needed a retry, the time
 * from sending the kill that cost it its node to that request's reply. It spans death
 * detection, re-dispatch, the rerun and the reply's trip back, as a client sees it. A
 * retried reply is charged to the latest kill sent before it arrived (kills are hundreds
 * of ms apart and recoveries are short, so the attribution is unambiguous in practice).
 */
import { hostPort } from "../protocol/address.js";
import { InvalidOptionError } from "../errors.js";
import { parseDuration } from "./duration.js";
import { recoveryFigures, type ChaosFigures } from "./report.js";

export interface ChaosOptions {
  host: string;
  httpPort: number;
  killEveryMs: number;
  /** Sent as `Authorization: Bearer`: needed when the cluster is not on loopback. */
  adminToken?: string;
  random?: () => number;
}

const REQUEST_TIMEOUT_MS = 5000;

/** Parses the --chaos spec: `kill-every=DURATION`. */
export function parseChaos(spec: string): { killEveryMs: number } {
  const match = /^kill-every=(.+)$/.exec(spec.trim());
  if (!match) throw new InvalidOptionError(`chaos must look like kill-every=500ms, got ${JSON.stringify(spec)}`);
  return { killEveryMs: parseDuration(match[1]!, "chaos kill-every") };
}

export class Chaos {
  readonly #options: ChaosOptions;
  readonly #base: string;
  readonly #headers: Record<string, string>;
  /** performance.now() when each kill went out, ascending; a kill that fails is taken back out. */
  readonly #killTimes: number[] = [];
  readonly #recoveries: number[] = [];
  #skipped = 0;
  #killErrors = 0;
  #lastKillError: string | null = null;
  #timer: NodeJS.Timeout | null = null;
  #tick: Promise<void> | null = null;

  constructor(options: ChaosOptions) {
    this.#options = options;
    this.#base = `http://${hostPort(options.host, options.httpPort)}`;
    this.#headers = options.adminToken ? { authorization: `Bearer ${options.adminToken}` } : {};
  }

  /** Fails with a clear message when the HTTP front cannot be reached, before any load is sent. */
  async check(): Promise<void> {
    try {
      await this.#upNodes();
    } catch (err) {
      throw new InvalidOptionError(
        `--chaos needs the cluster's HTTP front at ${this.#base} (crew start --http-port): ${(err as Error).message}`,
      );
    }
  }

  start(): void {
    this.#timer = setInterval(() => {
      this.#tick ??= this.#killOne().finally(() => (this.#tick = null));
    }, this.#options.killEveryMs);
  }

  /** Stops killing; waits for a kill in progress to finish. */
  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    await this.#tick;
  }

  /** The load generator's onRetried hook: charge the retry to the latest kill before it. */
  readonly onRetried = (arrivedAt: number): void => {
    const times = this.#killTimes;
    for (let i = times.length - 1; i >= 0; i--) {
      if (times[i]! <= arrivedAt) {
        this.#recoveries.push(arrivedAt - times[i]!);
        return;
      }
    }
  };

  figures(lost: number): ChaosFigures {
    return {
      killEveryMs: this.#options.killEveryMs,
      kills: this.#killTimes.length,
      skipped: this.#skipped,
      killErrors: this.#killErrors,
      lastKillError: this.#lastKillError,
      lost,
      recovery: recoveryFigures(this.#recoveries),
    };
  }

  async #killOne(): Promise<void> {
    let sentAt = -1;
    try {
      const up = await this.#upNodes();
      if (up.length === 0) {
        this.#skipped++;
        return;
      }
      const random = this.#options.random ?? Math.random;
      const id = up[Math.floor(random() * up.length)]!;
      sentAt = performance.now();
      this.#killTimes.push(sentAt);
      const res = await fetch(`${this.#base}/v1/nodes/${encodeURIComponent(id)}/kill`, {
        method: "POST",
        headers: this.#headers,
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
      await res.arrayBuffer();
      if (res.status === 202) return;
      this.#takeBack(sentAt);
      if (res.status === 404) this.#skipped++; // it died or restarted between status and kill
      else this.#failed(`POST /v1/nodes/${id}/kill answered ${res.status}`);
    } catch (err) {
      if (sentAt >= 0) this.#takeBack(sentAt);
      this.#failed((err as Error).message);
    }
  }

  async #upNodes(): Promise<string[]> {
    const res = await fetch(`${this.#base}/v1/status`, { headers: this.#headers, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
    if (res.status !== 200) {
      await res.arrayBuffer();
      throw new Error(`GET /v1/status answered ${res.status}`);
    }
    const status = (await res.json()) as { nodes?: Array<{ id: string; state: string }> };
    if (!Array.isArray(status.nodes)) throw new Error("GET /v1/status has no nodes list");
    return status.nodes.filter((n) => n.state === "up").map((n) => n.id);
  }

  #takeBack(sentAt: number): void {
    const i = this.#killTimes.lastIndexOf(sentAt);
    if (i >= 0) this.#killTimes.splice(i, 1);
  }

  #failed(reason: string): void {
    this.#killErrors++;
    this.#lastKillError = reason;
  }
}
