/**
 * Lookahead's hand-over cell (src/nodes/hand-over.ts): whatever the order of a node's claim
 * and the primary's take, and with late takes anywhere, each held attempt goes to exactly
 * one side. The races themselves run on real threads in lookahead.test.ts.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { claimHeld, takeHeld } from "../dist/nodes/hand-over.js";

const newCell = (): BigInt64Array => new BigInt64Array(new SharedArrayBuffer(8));

describe("the hand-over cell", () => {
  it("gives each held attempt to exactly one side: whoever decides first, in any order, with stale takes anywhere", () => {
    fc.assert(
      fc.property(
        // Per held attempt (ids growing, one held at a time): whether the node or the take goes first, and whether a stale take of an older attempt comes in between.
        fc.array(fc.record({ nodeFirst: fc.boolean(), stale: fc.option(fc.nat(), { nil: undefined }) }), { minLength: 1, maxLength: 40 }),
        // Where the ids start: a young cluster, or one past 2^31 and 2^32 attempts (an Int32 cell wrapped there).
        fc.constantFrom(0, 2 ** 31 - 20, 2 ** 32 - 20, 2 ** 45),
        (attempts, base) => {
          const cell = newCell();
          const started: number[] = [];
          let a = base;
          for (const { nodeFirst, stale } of attempts) {
            // A late take of an attempt the node started before (the take crossed its `started`): it changes nothing.
            if (stale !== undefined && started.length > 0) expect(takeHeld(cell, started[stale % started.length]!)).toBe(false);
            a += 1 + ((stale ?? 0) % 3); // ids grow, not always by one (other nodes' attempts)
            if (nodeFirst) started.push(a);
            const first = nodeFirst ? claimHeld(cell, a) : takeHeld(cell, a);
            const second = nodeFirst ? takeHeld(cell, a) : claimHeld(cell, a);
            expect([first, second]).toEqual([true, false]);
            // Asked again, each side reads the same decision.
            expect(claimHeld(cell, a)).toBe(nodeFirst);
            expect(takeHeld(cell, a)).toBe(!nodeFirst);
          }
        },
      ),
    );
  });

  it("lets a take decide before the run reaches the node: the node then finds that attempt, and any older one, gone", () => {
    const cell = newCell();
    expect(takeHeld(cell, 5)).toBe(true);
    expect(takeHeld(cell, 9)).toBe(true); // the next held attempt, also won back before it arrived
    expect(claimHeld(cell, 5)).toBe(false);
    expect(claimHeld(cell, 9)).toBe(false);
    expect(claimHeld(cell, 12)).toBe(true);
  });

  it("decides across 2^31: attempt ids outgrow an Int32 in a long-lived cluster", () => {
    const cell = newCell();
    expect(claimHeld(cell, 2 ** 31 - 1)).toBe(true);
    expect(takeHeld(cell, 2 ** 31 + 5)).toBe(true);
    expect(claimHeld(cell, 2 ** 31 + 5)).toBe(false); // an Int32 cell let both win here
    expect(claimHeld(cell, 2 ** 32 + 1)).toBe(true);
    expect(takeHeld(cell, 2 ** 32 + 1)).toBe(false);
  });
});
