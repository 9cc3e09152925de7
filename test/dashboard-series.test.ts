/** The dashboard's per-second samples: counts, exact percentiles, and a bounded reservoir past 4096 answers. */
import { describe, expect, it } from "vitest";
import { Series } from "../dist/dashboard/series.js";

describe("the dashboard's samples", () => {
  it("counts answers and refusals, and takes exact percentiles of a calm second", () => {
    const series = new Series();
    for (let ms = 1; ms <= 100; ms++) series.record(ms, ms % 10 !== 0);
    series.refused();
    expect(series.sample(3, 2, 1000)).toEqual({ t: 1000, ok: 90, failed: 10, refused: 1, p50: 50, p99: 99, queue: 3, inFlight: 2, seq: 1 });
    // The next second starts from nothing: no answers, no percentiles.
    expect(series.sample(0, 0, 2000)).toMatchObject({ ok: 0, failed: 0, refused: 0, p50: null, p99: null, seq: 2 });
    expect(series.samples.since(1).map((s) => s.seq)).toEqual([2]);
  });

  it("keeps percentiles within a few ranks of the truth in a second of 100,000 answers", () => {
    const series = new Series();
    for (let i = 1; i <= 100_000; i++) series.record(i / 1000, true);
    const sample = series.sample(0, 0);
    expect(sample.ok).toBe(100_000);
    // Four standard deviations of a 4096-value reservoir: never fails by chance in practice.
    expect(sample.p50).toBeGreaterThan(46.8);
    expect(sample.p50).toBeLessThan(53.2);
    expect(sample.p99).toBeGreaterThan(98.3);
    expect(sample.p99).toBeLessThanOrEqual(100);
  });

  it("keeps five minutes of samples", () => {
    const series = new Series();
    for (let i = 0; i < 400; i++) series.sample(0, 0, i);
    const kept = series.samples.since(0);
    expect(kept).toHaveLength(300);
    expect(kept[0]!.seq).toBe(101);
    expect(series.samples.last).toBe(400);
  });
});
