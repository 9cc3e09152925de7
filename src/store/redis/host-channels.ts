/**
 * What reaches one host from the others through Redis: replies to the requests it
 * accepted (its reply stream, read with XREAD BLOCK on a connection of its own), news of
 * work on the shared queue and aborts of the attempts it runs (pub/sub).
 *
 * Pub/sub is only a hurry-up: a message missed while disconnected costs latency, not
 * correctness (the pull loop polls, and the heartbeat reports every attempt the host no
 * longer holds). Replies sit in a stream, so the ones sent while this host was away from
 * Redis are read when it is back.
 */
import type { Redis } from "ioredis";
import type { Logger } from "pino";
import type { Keys } from "./keys.js";
import type { StoredReply } from "./shared-queue.js";

export interface ChannelHandlers {
  reply(requestId: string, reply: StoredReply): void;
  /** New work on the shared queue (`message`: its band), or `let-go BAND ENTRY` (scripts.ts, LET_GO). */
  work(message: string): void;
  abort(requestId: string): void;
}

/** How long one XREAD blocks, ms: also how soon close() is noticed. */
const BLOCK_MS = 1000;
const BATCH = 1000;

export class HostChannels {
  readonly #blocking: Redis;
  readonly #cmd: Redis;
  readonly #sub: Redis;
  readonly #keys: Keys;
  readonly #host: string;
  readonly #on: ChannelHandlers;
  readonly #log: Logger;
  #closed = false;
  #reading: Promise<void> | null = null;

  constructor(conns: { blocking: Redis; cmd: Redis; sub: Redis }, keys: Keys, host: string, on: ChannelHandlers, log: Logger) {
    this.#blocking = conns.blocking;
    this.#cmd = conns.cmd;
    this.#sub = conns.sub;
    this.#keys = keys;
    this.#host = host;
    this.#on = on;
    this.#log = log;
  }

  async start(): Promise<void> {
    const work = this.#keys.workChannel;
    const control = this.#keys.control(this.#host);
    this.#sub.on("message", (channel: string, message: string) => {
      if (channel === work) this.#on.work(message);
      else if (channel === control) this.#on.abort(message);
    });
    await this.#sub.subscribe(work, control);
    this.#reading = this.#readLoop();
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#blocking.disconnect(false);
    await this.#reading;
  }

  /** Reads the reply stream from its start: replies that arrived while this host was away are read too. */
  async #readLoop(): Promise<void> {
    const stream = this.#keys.replies(this.#host);
    let last = "0";
    while (!this.#closed) {
      let batch: Array<[string, string[]]> = [];
      try {
        const res = (await this.#blocking.xread("COUNT", BATCH, "BLOCK", BLOCK_MS, "STREAMS", stream, last)) as Array<[string, Array<[string, string[]]>]> | null;
        batch = res?.[0]?.[1] ?? [];
      } catch (err) {
        if (this.#closed) return;
        await this.#whenReady(this.#blocking);
        continue;
      }
      for (const [id, fields] of batch) {
        last = id;
        try {
          this.#on.reply(fields[1]!, JSON.parse(fields[3]!) as StoredReply);
        } catch (err) {
          this.#log.error({ err, entry: id }, "a reply from Redis could not be delivered");
        }
      }
      // Read replies go: the stream only holds what is on its way.
      if (batch.length > 0) this.#cmd.xdel(stream, ...batch.map(([id]) => id)).catch(() => {});
    }
  }

  #whenReady(redis: Redis): Promise<void> {
    if (redis.status === "ready") return new Promise((resolve) => setTimeout(resolve, 100));
    return new Promise((resolve) => {
      const done = () => {
        clearInterval(poll);
        redis.off("ready", done);
        resolve();
      };
      const poll = setInterval(() => this.#closed && done(), 200);
      redis.once("ready", done);
    });
  }
}
