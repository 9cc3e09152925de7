/**
 * A validating JSON scanner that finds where values are without building them: the
 * primary reads a frame's envelope (id, handler, key, …) and keeps the payload as the
 * JSON text it arrived as, for the node to parse. A payload then costs the primary its
 * size as text, never its size parsed (a 1 MiB frame of `[{},{},…]` is ~20 MiB of heap
 * once parsed), and the primary spends no time building objects it never reads.
 *
 * The grammar is RFC 8259's, checked in full (a text that passes here is one JSON.parse
 * accepts), with nesting limited to MAX_DEPTH so no input can exhaust a stack.
 */

/** Deeper nesting is refused: JSON.parse in a node would need a deep stack for it too. */
export const MAX_DEPTH = 2048;

/**
 * What the scanner refused: `syntax` (not JSON), `nesting` (deeper than MAX_DEPTH), or
 * `not-an-object` (scanObject on text that does not start with "{", valid JSON or not).
 */
export type JsonRefusal = "syntax" | "nesting" | "not-an-object";

export class JsonSyntaxError extends Error {
  /** scanObject: the top-level member whose value was being read when the error was found. */
  member: string | undefined;

  constructor(
    message: string,
    readonly kind: JsonRefusal = "syntax",
  ) {
    super(message);
  }
}

/**
 * The value spans of a top-level object's members, by key (the last one wins, as in
 * JSON.parse). `plain`: the value is a string without escapes, so the text between its
 * quotes is its value (no JSON.parse needed).
 */
export type Members = Map<string, { start: number; end: number; plain: boolean }>;

/**
 * Scans `text` as one JSON object into `members` (value spans by key). Throws
 * JsonSyntaxError; the members scanned before the error are in `members` then (a
 * refusal can still echo the id).
 */
export function scanObject(text: string, members: Members): void {
  const s = new Scanner(text);
  s.ws();
  if (s.peek() !== 0x7b) throw new JsonSyntaxError("frame is not a JSON object", "not-an-object");
  s.pos++;
  s.ws();
  if (s.peek() === 0x7d) {
    s.pos++;
  } else {
    for (;;) {
      s.ws();
      const keyStart = s.pos;
      // Keys are almost always plain: sliced, not parsed (a JSON.parse per key was most of a frame's scan).
      const key = s.string() ? (JSON.parse(text.slice(keyStart, s.pos)) as string) : text.slice(keyStart + 1, s.pos - 1);
      s.ws();
      s.expect(0x3a);
      s.ws();
      const start = s.pos;
      let plain = false;
      try {
        if (s.peek() === 0x22) plain = !s.string();
        else s.value(1);
      } catch (err) {
        if (err instanceof JsonSyntaxError) err.member = key;
        throw err;
      }
      members.set(key, { start, end: s.pos, plain });
      s.ws();
      if (s.peek() === 0x2c) {
        s.pos++;
        continue;
      }
      s.expect(0x7d);
      break;
    }
  }
  s.ws();
  if (s.pos !== text.length) throw new JsonSyntaxError("text after the JSON object");
}

/** Checks that `text` is one JSON value (whitespace around it allowed). Throws JsonSyntaxError. */
export function checkJson(text: string): void {
  const s = new Scanner(text);
  s.ws();
  s.value(0);
  s.ws();
  if (s.pos !== text.length) throw new JsonSyntaxError(s.pos < text.length ? "text after the JSON value" : "no JSON value");
}

class Scanner {
  pos = 0;
  constructor(readonly text: string) {}

  peek(): number {
    return this.text.charCodeAt(this.pos); // NaN past the end
  }

  expect(code: number): void {
    if (this.peek() !== code) this.fail(`expected ${JSON.stringify(String.fromCharCode(code))}`);
    this.pos++;
  }

  fail(what: string, kind?: JsonRefusal): never {
    throw new JsonSyntaxError(`${what} at position ${this.pos}`, kind);
  }

  ws(): void {
    for (;;) {
      const c = this.peek();
      if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) return;
      this.pos++;
    }
  }

  value(depth: number): void {
    const c = this.peek();
    if (c === 0x22) {
      this.string();
      return;
    }
    if (c === 0x7b || c === 0x5b) return this.container(c === 0x7b, depth + 1);
    if (c === 0x2d || (c >= 0x30 && c <= 0x39)) return this.number();
    for (const word of ["true", "false", "null"]) {
      if (this.text.startsWith(word, this.pos)) {
        this.pos += word.length;
        return;
      }
    }
    this.fail("expected a JSON value");
  }

  container(object: boolean, depth: number): void {
    if (depth > MAX_DEPTH) this.fail(`nesting deeper than ${MAX_DEPTH}`, "nesting");
    const close = object ? 0x7d : 0x5d;
    this.pos++;
    this.ws();
    if (this.peek() === close) {
      this.pos++;
      return;
    }
    for (;;) {
      this.ws();
      if (object) {
        this.string();
        this.ws();
        this.expect(0x3a);
        this.ws();
      }
      this.value(depth);
      this.ws();
      if (this.peek() === 0x2c) {
        this.pos++;
        continue;
      }
      this.expect(close);
      return;
    }
  }

  /** Scans one string; true when it holds an escape (its text between the quotes is then not its value). */
  string(): boolean {
    this.expect(0x22);
    const text = this.text;
    let escaped = false;
    for (;;) {
      const c = text.charCodeAt(this.pos);
      if (c === 0x22) {
        this.pos++;
        return escaped;
      }
      if (c === 0x5c) {
        escaped = true;
        const e = text.charCodeAt(this.pos + 1);
        if (e === 0x75) {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(this.pos + 2, this.pos + 6))) this.fail("bad \\u escape");
          this.pos += 6;
        } else if (e === 0x22 || e === 0x5c || e === 0x2f || e === 0x62 || e === 0x66 || e === 0x6e || e === 0x72 || e === 0x74) {
          this.pos += 2;
        } else {
          this.fail("bad escape");
        }
        continue;
      }
      if (!(c >= 0x20)) this.fail(Number.isNaN(c) ? "unterminated string" : "control character in a string");
      this.pos++;
    }
  }

  number(): void {
    NUMBER.lastIndex = this.pos;
    if (!NUMBER.test(this.text)) this.fail("bad number");
    this.pos = NUMBER.lastIndex;
  }
}

const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
