// The slow-tail handler, not hedged (the baseline).
export { default } from "../lib/tail.js";
