/**
 * createCluster's options are checked at the edge, and a refusal names the option and
 * quotes the value, whatever the value: a BigInt (JSON.stringify throws on one) too.
 */
import { describe, expect, it } from "vitest";
import { createCluster } from "crew";

describe("createCluster refuses a bad option by name", () => {
  it.each([
    [{ threads: 10n }, "threads must be an integer from 0 to 256, got 10n"],
    [{ timeoutMs: 5n }, "timeoutMs must be an integer from 1 to 2147483647, got 5n"],
    [{ redis: { url: 1n } }, 'redis must be a URL like redis://127.0.0.1:6379/0, got {"url":"1n"}'],
    [{ weights: { t0: 2n } }, "weights.t0 must be a finite number ≥ 0, got 2n"],
  ])("%o", async (options, message) => {
    const err = await createCluster({ ...(options as object), logLevel: "silent" }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "E_INVALID_OPTION" });
    expect((err as Error).message).toContain(message);
  });
});
