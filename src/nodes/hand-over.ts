/**
 * Lookahead's hand-over cell (primary/lookahead.ts): one BigInt64 shared by a thread node and
 * whoever answers takes for it (its thread transport, in the primary or in the thread host).
 * It holds the last held attempt decided, signed by who won it: `+a` the node started `a`,
 * `-a` the primary took `a` back; 0 before any.
 *
 * Each side decides attempt `a` by one compare-and-swap from whatever older decision the
 * cell holds to its own signed `a`; whoever swaps first wins, and the other then reads the
 * decision. Neither has to have seen the run first: a take may be decided before the run
 * reaches the node (which then drops it on arrival), so nothing has to mark the cell as a
 * run passes, and runs and takes need not share a route. (The cell once held the held
 * attempt's id, set by the transport as the run passed, and both sides swapped it to 0.)
 * This relies on two facts the primary keeps: attempt ids grow, and a node holds one
 * attempt at a time (the next is sent only once the last was decided); so a cell about a
 * newer attempt than `a` means `a` was decided, and not by the node if the node is only
 * now reaching it. Checked over every order in test/hand-over.test.ts. 64 bits: attempt
 * ids outgrow an Int32 after 2^31 attempts (~12 h at 50k req/s), and the comparison above
 * would then let both sides win.
 */

/** The node's side: true when it won held attempt `a` and may start it. */
export function claimHeld(cell: BigInt64Array, a: number): boolean {
  return decide(cell, a, 1);
}

/** The primary's side (a take): true when `a` was won back and never runs on this node. */
export function takeHeld(cell: BigInt64Array, a: number): boolean {
  return decide(cell, a, -1);
}

function decide(cell: BigInt64Array, a: number, side: 1 | -1): boolean {
  const id = BigInt(a);
  const mine = side === 1 ? id : -id;
  for (;;) {
    const seen = Atomics.load(cell, 0);
    if ((seen < 0n ? -seen : seen) >= id) return seen === mine;
    if (Atomics.compareExchange(cell, 0, seen, mine) === seen) return true;
  }
}
