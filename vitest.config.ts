import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

// Tests exercise the built package (dist/), as users import it: `npm test` builds first.
// End-to-end tests spawn real threads and processes from dist/, so src/ alone cannot serve.
export default defineConfig({
  resolve: {
    alias: { crew: fileURLToPath(new URL("./dist/index.js", import.meta.url)) },
  },
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Real crashes and real sockets: a failure should never hang CI, and a test file
    // that leaves a handle open is a bug to fix, not to wait out.
    teardownTimeout: 10_000,
  },
});
