// Writes a suite run to benchmarks/results/: latest.json (every figure), latest.md (the
// tables README shows) and latest.svg (one bar chart per scenario, drawn by hand from the
// numbers: no chart dependency).
import { mkdirSync, writeFileSync } from "node:fs";

const RESULTS = new URL("../results/", import.meta.url);

export function writeResults(run) {
  mkdirSync(RESULTS, { recursive: true });
  writeFileSync(new URL("latest.json", RESULTS), JSON.stringify(run, null, 2) + "\n");
  writeFileSync(new URL("latest.md", RESULTS), markdown(run));
  writeFileSync(new URL("latest.svg", RESULTS), svg(run));
  return ["latest.json", "latest.md", "latest.svg"].map((f) => new URL(f, RESULTS).pathname);
}

const cell = (v) => String(v).replaceAll("|", "\\|");
const tableRow = (cells) => `| ${cells.map(cell).join(" | ")} |`;

export function markdown(run) {
  const m = run.machine;
  const out = [
    `Machine: ${m.cpu}, ${m.cores} cores, ${m.memoryGb} GB, Node.js ${m.node}, ${m.platform}. ${run.date}.`,
    `Command: \`${run.command}\` (${run.seconds} s per measurement, best of ${run.rounds} alternating rounds; the suite took ${run.totalSeconds} s).`,
    "",
  ];
  for (const s of run.scenarios) {
    out.push(`### ${s.title}`, "");
    if (s.pending || s.error) {
      out.push(`_${s.pending ? "Pending" : "Failed"}: ${s.pending ?? s.error}_`, "");
      continue;
    }
    out.push(`${s.measures}.`, "", tableRow(s.columns), tableRow(s.columns.map(() => "---")));
    for (const row of s.rows) out.push(tableRow(row));
    out.push("");
  }
  out.push("### Targets", "", tableRow(["target", "measured", "met"]), tableRow(["---", "---", "---"]));
  for (const s of run.scenarios) {
    for (const t of s.targets ?? []) out.push(tableRow([t.target, t.value, t.met ? "yes" : "**no**"]));
    if (s.pending) out.push(tableRow([s.title, "pending", "—"]));
  }
  return out.join("\n") + "\n";
}

const esc = (s) => String(s).replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;");

/** Horizontal bars, one panel per scenario, each scaled to its own largest bar; baselines in grey. */
export function svg(run) {
  const width = 760;
  const labelWidth = 300;
  const barMax = width - labelWidth - 90;
  const barHeight = 18;
  const parts = [];
  let y = 30;
  parts.push(`<text x="10" y="20" font-size="14" font-weight="bold">crew benchmarks — ${esc(run.date)}, ${esc(run.machine.cores)} cores</text>`);
  for (const s of run.scenarios) {
    if (!s.chart) continue;
    y += 22;
    parts.push(`<text x="10" y="${y}" font-size="13" font-weight="bold">${esc(s.title)} (${esc(s.chart.unit)})</text>`);
    y += 8;
    const top = Math.max(...s.chart.bars.map((b) => b.value), 1e-9);
    for (const bar of s.chart.bars) {
      const w = Math.max(1, Math.round((bar.value / top) * barMax));
      parts.push(
        `<text x="10" y="${y + 13}" font-size="12">${esc(bar.label)}</text>`,
        `<rect x="${labelWidth}" y="${y}" width="${w}" height="${barHeight - 4}" fill="${bar.baseline ? "#a0a0a0" : "#2f6fb0"}"/>`,
        `<text x="${labelWidth + w + 6}" y="${y + 12}" font-size="12">${esc(bar.text ?? `${bar.value.toFixed(2)}×`)}</text>`,
      );
      y += barHeight;
    }
  }
  y += 16;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${y}" viewBox="0 0 ${width} ${y}" font-family="sans-serif">`,
    `<rect width="${width}" height="${y}" fill="white"/>`,
    ...parts,
    "</svg>",
    "",
  ].join("\n");
}
