/**
 * TypeScript handlers are compiled once by the primary into <handlers>/.crew-cache and
 * the nodes import that JavaScript (no tsx in the nodes). These check, on both node
 * kinds, that: the compiled code is what the nodes run, and the cache is reused while
 * the sources are unchanged and rebuilt when one changes (even a .ts file it imports);
 * relative .ts imports are bundled, .js imports and packages still resolve from the
 * handler's folder, and import.meta names the .ts file; errors name the .ts file and line.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { type ClusterOptions, createCluster, HandlerLoadError } from "crew";

const scratch = mkdtempSync(join(tmpdir(), "crew-transpile-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

let folders = 0;
function folder(files: Record<string, string>): string {
  const dir = join(scratch, `f${folders++}`);
  mkdirSync(dir);
  for (const [file, text] of Object.entries(files)) writeFileSync(join(dir, file), text);
  return dir;
}

/** Starts a cluster, runs one request, closes it; returns the result (or throws the start error). */
async function runOnce(options: ClusterOptions, handler: string, payload: unknown = null): Promise<unknown> {
  const cluster = await createCluster({ logLevel: "silent", ...options });
  try {
    return await cluster.run(handler, payload);
  } finally {
    await cluster.close();
  }
}

const KINDS = [{ threads: 1 }, { processes: 1 }] as const;

describe.each(KINDS)("TypeScript handlers on %o", (kind) => {
  it("bundles relative .ts imports, keeps .js imports and packages, and import.meta names the .ts file", async () => {
    const dir = folder({
      "shape.ts": [
        'import { double } from "./lib/math.js";', // TypeScript's convention: .js naming a .ts file
        'import { tag } from "./plain.mjs";',
        'import { basename } from "node:path";',
        "export const config = { timeoutMs: 1234 };",
        "export default function (n: number): { v: number; tag: string; url: string; file: string } {",
        "  return { v: double(n), tag: tag(), url: import.meta.url, file: basename(import.meta.filename as string) };",
        "}",
      ].join("\n"),
      "plain.mjs": "export const tag = () => 'plain';\nexport default () => 0;\n",
    });
    mkdirSync(join(dir, "lib"));
    writeFileSync(join(dir, "lib", "math.ts"), "export const double = (n: number): number => n * 2;\n");
    const result = await runOnce({ handlers: dir, ...kind }, "shape", 21);
    expect(result).toEqual({ v: 42, tag: "plain", url: pathToFileURL(join(dir, "shape.ts")).href, file: "shape.ts" });
    expect(readdirSync(join(dir, ".crew-cache")).filter((f) => f.endsWith(".mjs"))).toHaveLength(1);
  });

  it("reuses the compiled file while the sources are unchanged, and rebuilds when an imported .ts changes", async () => {
    const dir = folder({ "answer.ts": 'import { n } from "./lib/n.ts";\nexport default (): number => n;\n' });
    mkdirSync(join(dir, "lib"));
    writeFileSync(join(dir, "lib", "n.ts"), "export const n: number = 1;\n");
    expect(await runOnce({ handlers: dir, ...kind }, "answer")).toBe(1);

    // Tamper with the compiled output: the next cluster must run it as it is (a cache hit).
    const cache = join(dir, ".crew-cache");
    const [compiled] = readdirSync(cache).filter((f) => f.startsWith("answer.") && f.endsWith(".mjs"));
    writeFileSync(join(cache, compiled!), "export default () => 'from the cache';\n");
    expect(await runOnce({ handlers: dir, ...kind }, "answer")).toBe("from the cache");

    // An edit to the imported module (a new size and mtime) rebuilds.
    writeFileSync(join(dir, "lib", "n.ts"), "export const n: number = 22;\n");
    const later = new Date(Date.now() + 5000);
    utimesSync(join(dir, "lib", "n.ts"), later, later);
    expect(await runOnce({ handlers: dir, ...kind }, "answer")).toBe(22);
  });

  it("a module that throws on import is refused naming the .ts file and the line", async () => {
    const dir = folder({ "late.ts": "const x: number = 1;\n\n\nthrow new Error('boom in ts ' + x);\nexport default () => x;\n" });
    const err = await createCluster({ handlers: dir, logLevel: "silent", ...kind }).then(
      async (c) => (await c.close(), null),
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(HandlerLoadError);
    expect((err as Error).message).toContain(`${join(dir, "late.ts")}:4:`);
    expect((err as Error).message).toContain("boom in ts 1");
  });
});

describe("TypeScript that does not compile", () => {
  it("is refused by the primary, naming the file, line and column, before any node imports it", async () => {
    const dir = folder({ "broken.ts": "export default function (a: number) {\n  return a +;\n}\n" });
    const err = await createCluster({ handlers: dir, threads: 1, logLevel: "silent" }).then(
      async (c) => (await c.close(), null),
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(HandlerLoadError);
    expect((err as Error).message).toMatch(new RegExp(`${join(dir, "broken.ts").replace(/[.]/g, "\\.")}:2:\\d+`));
    expect(readFileSync(join(dir, ".crew-cache", ".gitignore"), "utf8")).toBe("*\n");
  });
});
