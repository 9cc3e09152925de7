// The same handler, hedged after its running p95.
export { default } from "../lib/tail.js";
export const config = { hedgeAfterMs: "p95" };
