// A worker thread that runs fib(n) back to back for `ms` and reports how many it did:
// the machine's own ceiling for CPU work on that many threads, with no dispatch at all.
import { parentPort, workerData } from "node:worker_threads";
import fib from "../../workers/fib.js";

const { n, ms } = workerData;
const end = performance.now() + ms;
let done = 0;
while (performance.now() < end) {
  fib(n);
  done++;
}
parentPort.postMessage(done);
