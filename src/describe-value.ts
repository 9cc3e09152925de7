/**
 * A value as an error message quotes it: as JSON, with a BigInt written 10n (alone) or
 * "10n" (inside an object); else its String() (a cycle, a symbol, a function); at most
 * 120 characters. JSON.stringify alone throws on a BigInt, and the message meant to say
 * what was wrong would itself fail.
 */
export function describeValue(v: unknown): string {
  let text: string | undefined;
  try {
    text = typeof v === "bigint" ? `${v}n` : JSON.stringify(v, (_key, x: unknown) => (typeof x === "bigint" ? `${x}n` : x));
  } catch {
    text = undefined; // a cycle
  }
  text ??= String(v);
  return text.length > 120 ? `${text.slice(0, 117)}...` : text;
}
