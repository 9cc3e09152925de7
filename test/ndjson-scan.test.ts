/**
 * Properties of the two pieces that read client bytes: the line splitter (any chunking,
 * any pauses, gives the same lines; an unfinished line costs about its size) and the
 * JSON scanner (it accepts exactly what JSON.parse accepts, and finds the same members).
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { LineSplitter } from "../dist/protocol/ndjson.js";
import { checkJson, scanObject } from "../dist/protocol/json-scan.js";

describe("LineSplitter", () => {
  it("gives every line once, in order, whatever the chunks and pauses", () => {
    fc.assert(
      fc.property(fc.array(fc.string({ unit: "grapheme", minLength: 1 }).filter((s) => !s.includes("\n") && s !== "\r"), { maxLength: 20 }), fc.array(fc.nat(50), { minLength: 1 }), fc.array(fc.boolean()), (lines, cuts, pauses) => {
        const out: string[] = [];
        let p = 0;
        const splitter = new LineSplitter(1 << 20, (line) => {
          out.push(line);
          if (pauses[p++ % Math.max(1, pauses.length)]) splitter.pause();
        });
        const bytes = Buffer.from(lines.map((l) => l + "\n").join(""));
        let at = 0;
        for (let i = 0; at < bytes.length; i++) {
          const size = 1 + cuts[i % cuts.length]!;
          expect(splitter.push(bytes.subarray(at, at + size))).toBe(true);
          at += size;
          if (i % 3 === 0) splitter.resume();
        }
        while (splitter.paused) splitter.resume();
        expect(out).toEqual(lines);
      }),
    );
  });

  it("holds an unfinished line sent one byte at a time in about its size, and refuses it past the limit", () => {
    const splitter = new LineSplitter(100_000, () => {});
    const one = Buffer.from("x");
    for (let i = 0; i < 60_000; i++) splitter.push(one);
    expect(splitter.overflowed).toBe(false);
    expect(splitter.heldBytes).toBeLessThanOrEqual(2 * 60_000);
    for (let i = 0; i < 40_000; i++) splitter.push(one);
    expect(splitter.push(Buffer.from("x"))).toBe(false);
    expect(splitter.overflowed).toBe(true);
    expect(splitter.heldBytes).toBe(0);
  });
});

describe("the JSON scanner", () => {
  it("accepts every JSON text and finds each member's value", () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string(), fc.oneof(fc.string(), fc.jsonValue())), (obj) => {
        const text = JSON.stringify(obj, null, Math.random() < 0.5 ? 0 : 1);
        checkJson(text);
        const members = new Map();
        scanObject(text, members);
        expect([...members.keys()].sort()).toEqual(Object.keys(obj).sort());
        for (const [key, span] of members) {
          expect(JSON.parse(text.slice(span.start, span.end))).toEqual(JSON.parse(JSON.stringify(obj[key])));
          // A plain span is a string whose text between the quotes is its value.
          if (span.plain) expect(text.slice(span.start + 1, span.end - 1)).toBe(obj[key]);
          else expect(typeof obj[key] === "string" && !text.slice(span.start, span.end).includes("\\")).toBe(false);
        }
      }),
    );
  });

  it("refuses exactly what JSON.parse refuses", () => {
    const near = fc.oneof(fc.string(), fc.jsonValue().map((v) => JSON.stringify(v)).chain((t) => fc.tuple(fc.nat(t.length), fc.string({ maxLength: 2 })).map(([i, s]) => t.slice(0, i) + s + t.slice(i + 1))));
    fc.assert(
      fc.property(near, (text) => {
        let parses = true;
        try {
          JSON.parse(text);
        } catch {
          parses = false;
        }
        let scans = true;
        try {
          checkJson(text);
        } catch {
          scans = false;
        }
        expect(scans).toBe(parses);
      }),
      { numRuns: 2000 },
    );
  });
});
