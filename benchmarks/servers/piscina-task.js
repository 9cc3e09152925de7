// The piscina task of the naive baseline: the same handler modules crew runs.
import echo from "../../workers/echo.js";
import fib from "../../workers/fib.js";

const HANDLERS = { echo, fib };

export default function ({ handler, payload }) {
  return HANDLERS[handler](payload);
}
