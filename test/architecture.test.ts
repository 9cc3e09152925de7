/**
 * The layout's one hard rule: no import circles in src/, type-only imports and lazy
 * `import()` included. The fronts, the dashboard and the metrics get narrow ports
 * (primary/cluster-view.ts, store/keyed.ts's RequestSink), never the Cluster class, so
 * cluster.ts can start them without being imported back.
 *
 * The imports are read with TypeScript's own pre-processor (ts.preProcessFile), which
 * lists every static import, export-from and `import()` of a file without type-checking it.
 */
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { describe, expect, it } from "vitest";

const SRC = fileURLToPath(new URL("../src", import.meta.url));

/** Every .ts file under `dir`, as absolute paths. */
function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith(".ts") ? [path] : [];
  });
}

/** File → the files of src/ it imports (relative specifiers; `.js` names the `.ts` source). */
function importGraph(files: string[]): Map<string, string[]> {
  const known = new Set(files);
  const graph = new Map<string, string[]>();
  for (const file of files) {
    const { importedFiles } = ts.preProcessFile(readFileSync(file, "utf8"), true, true);
    const targets = importedFiles
      .map(({ fileName }) => fileName)
      .filter((name) => name.startsWith("."))
      .map((name) => resolve(dirname(file), name).replace(/\.js$/, ".ts"))
      .filter((target) => known.has(target));
    graph.set(file, [...new Set(targets)]);
  }
  return graph;
}

/** The first import circle found by a depth-first walk, as a path that ends where it starts; null if none. */
function findCircle(graph: Map<string, string[]>): string[] | null {
  const done = new Set<string>();
  const path: string[] = [];
  const onPath = new Set<string>();
  const visit = (file: string): string[] | null => {
    if (onPath.has(file)) return [...path.slice(path.indexOf(file)), file];
    if (done.has(file)) return null;
    path.push(file);
    onPath.add(file);
    for (const next of graph.get(file) ?? []) {
      const circle = visit(next);
      if (circle) return circle;
    }
    path.pop();
    onPath.delete(file);
    done.add(file);
    return null;
  };
  for (const file of graph.keys()) {
    const circle = visit(file);
    if (circle) return circle;
  }
  return null;
}

describe("src/ layout", () => {
  const graph = importGraph(sourceFiles(SRC));

  it("reads the imports it checks (the cluster imports its fronts)", () => {
    // Guards the check itself: were imports not resolved, no circle could ever be found.
    const cluster = graph.get(join(SRC, "primary/cluster.ts"))!;
    expect(cluster.map((f) => relative(SRC, f))).toEqual(expect.arrayContaining(["protocol/http-receiver.ts", "protocol/tcp-receiver.ts"]));
  });

  it("has no import circle, type-only imports included", () => {
    const circle = findCircle(graph);
    expect(circle?.map((f) => relative(SRC, f)).join(" → ") ?? null).toBeNull();
  });
});
