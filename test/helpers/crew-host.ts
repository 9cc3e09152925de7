/**
 * One crew host as a real process (`crew start --redis …`), for the several-hosts tests:
 * its JSON log lines are kept so a test can wait on them, and it can be SIGKILLed,
 * SIGSTOPped and continued like any process.
 */
import { fileURLToPath } from "node:url";
import { CrewChild, type Line, matches } from "./crew-process.js";

export const HOST_HANDLERS = fileURLToPath(new URL("../fixtures/hosts", import.meta.url));

export type { Line };

export class CrewHost extends CrewChild {
  port = 0;
  httpPort = 0;

  private constructor(readonly id: string, args: string[]) {
    super(["start", ...args]);
  }

  /** Starts `crew start --redis url --host-id id` with `extra` flags; resolves once it listens. */
  static async start(id: string, redisUrl: string, cluster: string, extra: string[] = []): Promise<CrewHost> {
    const host = new CrewHost(id, [
      "--handlers", HOST_HANDLERS, "--redis", redisUrl, "--cluster", cluster, "--host-id", id,
      "--port", "0", "--http-port", "0", "--log-level", "info", ...extra,
    ]);
    const line = await host.waitFor("listening");
    host.port = line.port as number;
    host.httpPort = line.httpPort as number;
    return host;
  }

  async kill(): Promise<void> {
    if (!this.running) return;
    this.signal("SIGKILL");
    await this.exited;
  }

  /** The first line with this msg and fields from index `from` on, logged already or to come. */
  waitFor(msg: string, fields: Record<string, unknown> = {}, from = 0, timeoutMs = 30_000): Promise<Line> {
    return this.waitUntil((l) => matches(l, msg, fields), `host ${this.id}: ${msg} ${JSON.stringify(fields)}`, from, timeoutMs);
  }
}
