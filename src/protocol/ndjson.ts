/**
 * Newline-delimited framing with a hard limit on frame size. Both the TCP receiver and
 * the client read through it, so neither ever buffers more than `maxFrameBytes` of an
 * unfinished line.
 */

export type FrameSink = (line: string) => void;

export class LineSplitter {
  readonly #maxFrameBytes: number;
  readonly #onLine: FrameSink;
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  #overflowed = false;

  constructor(maxFrameBytes: number, onLine: FrameSink) {
    this.#maxFrameBytes = maxFrameBytes;
    this.#onLine = onLine;
  }

  /** True once a frame went over the limit; the caller answers and closes, and no more lines come out. */
  get overflowed(): boolean {
    return this.#overflowed;
  }

  /** Feeds a chunk; calls onLine for every complete line. Returns false when a frame overflowed. */
  push(chunk: Buffer): boolean {
    if (this.#overflowed) return false;
    let start = 0;
    let nl = chunk.indexOf(10, start);
    while (nl !== -1) {
      const lineBytes = this.#pendingBytes + (nl - start);
      if (lineBytes > this.#maxFrameBytes) return this.#overflow();
      let line: string;
      if (this.#pendingBytes === 0) {
        line = chunk.toString("utf8", start, nl);
      } else {
        this.#pending.push(chunk.subarray(start, nl));
        line = Buffer.concat(this.#pending, lineBytes).toString("utf8");
        this.#pending = [];
        this.#pendingBytes = 0;
      }
      if (line.length > 0 && line !== "\r") this.#onLine(line);
      if (this.#overflowed) return false;
      start = nl + 1;
      nl = chunk.indexOf(10, start);
    }
    if (start < chunk.length) {
      this.#pendingBytes += chunk.length - start;
      if (this.#pendingBytes > this.#maxFrameBytes) return this.#overflow();
      // Copy: the socket may reuse its buffer, and a small slice would pin a large one.
      this.#pending.push(Buffer.from(chunk.subarray(start)));
    }
    return true;
  }

  #overflow(): false {
    this.#overflowed = true;
    this.#pending = [];
    this.#pendingBytes = 0;
    return false;
  }
}
