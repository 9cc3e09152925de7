// CPU-bound work: the n-th Fibonacci number, the slow recursive way. payload: { n } or a number.
export const config = { timeoutMs: 120_000 };

function fib(n) {
  return n < 2 ? n : fib(n - 1) + fib(n - 2);
}

export default function (payload) {
  const n = typeof payload === "number" ? payload : payload?.n;
  if (!Number.isInteger(n) || n < 0 || n > 45) throw new RangeError("payload.n must be an integer from 0 to 45");
  return fib(n);
}
