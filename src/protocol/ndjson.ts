/**
 * Newline-delimited framing with a hard limit on frame size. Both the TCP receiver and
 * the client read through it, so neither ever buffers more than `maxFrameBytes` of an
 * unfinished line (plus, while paused, the rest of the chunk that was being read).
 *
 * An unfinished line costs about its size: it is kept in one growable buffer (capacity
 * doubling, so at most twice the bytes held, plus one Buffer object), never as a list
 * of chunks — a client sending a line one byte at a time would otherwise cost a Buffer
 * object (~80 bytes of heap) per byte. Complete lines in a chunk are read straight from
 * the chunk, without a copy.
 *
 * A reader may `pause()` from inside onLine (its request cap is reached): the lines not
 * yet read stay here until `resume()`.
 */

import { isUtf8 } from "node:buffer";

export type FrameSink = (line: string) => void;

const EMPTY = Buffer.alloc(0);
const MIN_CAPACITY = 256;
/** An emptied buffer larger than this is released, so an idle connection holds nothing. */
const KEEP_CAPACITY = 16 * 1024;

/**
 * A buffer of at least `need` bytes (capacity doubling from MIN_CAPACITY) holding
 * from[start, end) at its start: bytes that arrive in small pieces cost about their
 * size, where a list of the pieces would cost a Buffer object (~80 bytes) each.
 */
export function grown(from: Buffer, start: number, end: number, need: number): Buffer {
  let capacity = Math.max(MIN_CAPACITY, from.length);
  while (capacity < need) capacity *= 2;
  const out = Buffer.allocUnsafe(capacity);
  from.copy(out, 0, start, end);
  return out;
}

export class LineSplitter {
  readonly #maxFrameBytes: number;
  readonly #onLine: FrameSink;
  /** Bytes not yet split are #buf[#start, #end); [#start, #scanned) is known to hold no newline. */
  #buf: Buffer = EMPTY;
  #start = 0;
  #end = 0;
  #scanned = 0;
  #overflowed = false;
  #paused = false;
  #busy = false;

  readonly #onNotUtf8: (() => void) | null;

  /**
   * `onNotUtf8`: given, every line is checked to be UTF-8 (simdutf, well under a µs for
   * a small frame), and one that is not goes there instead of to `onLine`: decoded, its
   * bad bytes would turn into U+FFFD, and the request would run on text the client
   * never sent.
   */
  constructor(maxFrameBytes: number, onLine: FrameSink, onNotUtf8?: () => void) {
    this.#maxFrameBytes = maxFrameBytes;
    this.#onLine = onLine;
    this.#onNotUtf8 = onNotUtf8 ?? null;
  }

  /** True once a frame went over the limit; the caller answers and closes, and no more lines come out. */
  get overflowed(): boolean {
    return this.#overflowed;
  }

  get paused(): boolean {
    return this.#paused;
  }

  /** Bytes of memory the splitter holds (its buffer's capacity), for memory bounds. */
  get heldBytes(): number {
    return this.#buf.length;
  }

  /** Feeds a chunk; calls onLine for every complete line. Returns false when a frame overflowed. */
  push(chunk: Buffer): boolean {
    if (this.#overflowed) return false;
    if (this.#start === this.#end && !this.#paused && !this.#busy) {
      // The usual case: nothing held, so lines are read from the chunk itself.
      const rest = this.#split(chunk, 0, chunk.length, 0);
      if (rest < 0) return false;
      if (rest === chunk.length) return true;
      if (!this.#paused && !this.#tail(chunk.length - rest)) return false;
      this.#append(chunk.subarray(rest));
      this.#scanned = this.#paused ? this.#start : this.#end;
      return true;
    }
    this.#append(chunk);
    return this.#paused || this.#busy ? true : this.#process();
  }

  /** Stops handing out lines (call it from onLine); what is left stays here. */
  pause(): void {
    this.#paused = true;
  }

  /** Hands out the lines held while paused. Returns false when a frame overflowed. */
  resume(): boolean {
    this.#paused = false;
    if (this.#overflowed) return false;
    return this.#busy ? true : this.#process();
  }

  #process(): boolean {
    const next = this.#split(this.#buf, this.#start, this.#end, this.#scanned);
    if (next < 0) return false;
    this.#start = next;
    if (this.#start === this.#end) {
      this.#start = this.#end = this.#scanned = 0;
      if (this.#buf.length > KEEP_CAPACITY) this.#buf = EMPTY;
      return true;
    }
    if (this.#paused) return true;
    this.#scanned = this.#end;
    return this.#tail(this.#end - this.#start);
  }

  /**
   * Emits the lines in buf[from, to) until paused; returns where the unread bytes begin,
   * or -1 when a line is over the limit. `searchFrom` skips bytes known to hold no newline.
   */
  #split(buf: Buffer, from: number, to: number, searchFrom: number): number {
    this.#busy = true;
    try {
      let start = from;
      let nl = buf.indexOf(10, Math.max(from, searchFrom));
      while (nl !== -1 && nl < to) {
        if (nl - start > this.#maxFrameBytes) return this.#overflow();
        if (this.#onNotUtf8 && !isUtf8(buf.subarray(start, nl))) {
          start = nl + 1;
          this.#onNotUtf8();
        } else {
          const line = buf.toString("utf8", start, nl);
          start = nl + 1;
          if (line.length > 0 && line !== "\r") this.#onLine(line);
        }
        if (this.#overflowed) return -1;
        if (this.#paused) return start;
        nl = buf.indexOf(10, start);
      }
      return start;
    } finally {
      this.#busy = false;
    }
  }

  /** An unfinished line of `bytes`: fine up to the limit. */
  #tail(bytes: number): boolean {
    if (bytes <= this.#maxFrameBytes) return true;
    this.#overflow();
    return false;
  }

  /** Copies bytes in after the held ones, growing the buffer by doubling. */
  #append(bytes: Buffer): void {
    const held = this.#end - this.#start;
    const need = held + bytes.length;
    if (this.#buf.length - this.#end < bytes.length) {
      if (need <= this.#buf.length) {
        this.#buf.copyWithin(0, this.#start, this.#end);
      } else {
        this.#buf = grown(this.#buf, this.#start, this.#end, need);
      }
      this.#scanned -= this.#start;
      this.#start = 0;
      this.#end = held;
    }
    bytes.copy(this.#buf, this.#end);
    this.#end += bytes.length;
  }

  #overflow(): -1 {
    this.#overflowed = true;
    this.#buf = EMPTY;
    this.#start = this.#end = this.#scanned = 0;
    return -1;
  }
}
