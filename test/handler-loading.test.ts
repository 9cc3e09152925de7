/**
 * Starting a cluster refuses what cannot work, naming the culprit: a handler module that
 * throws on import or exports a bad config (HandlerLoadError naming the file), a handlers
 * folder that is missing or empty, and bad options (InvalidOptionError naming the option),
 * both through createCluster and through `crew start`.
 */
import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { type ClusterOptions, createCluster, CrewError, HandlerLoadError, InvalidOptionError } from "crew";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const FIXTURES = fileURLToPath(new URL("./fixtures/runtime", import.meta.url));
const BAD_IMPORT = join(FIXTURES, "bad-import");
const BAD_CONFIG = join(FIXTURES, "bad-config");

const scratch = mkdtempSync(join(tmpdir(), "crew-handler-loading-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** A fresh folder under the scratch dir, holding the given files. */
function folder(name: string, files: Record<string, string> = {}): string {
  const dir = join(scratch, name);
  mkdirSync(dir);
  for (const [file, text] of Object.entries(files)) writeFileSync(join(dir, file), text);
  return dir;
}

/** createCluster's rejection; fails the test if it resolves (and closes what it started). */
async function refusal(options: ClusterOptions): Promise<CrewError> {
  const outcome = await createCluster({ logLevel: "silent", ...options }).then(
    async (cluster) => {
      await cluster.close();
      return new Error("createCluster resolved");
    },
    (err: unknown) => err,
  );
  expect(outcome).toBeInstanceOf(CrewError);
  return outcome as CrewError;
}

/** Runs `crew start` to its end (it must end: every case here is refused at start). */
async function crewStart(args: string[]): Promise<{ code: number; output: string }> {
  const run = promisify(execFile)(process.execPath, ["bin/crew.js", "start", "--port", "0", "--http-port", "0", ...args], {
    cwd: ROOT,
    timeout: 30_000,
  });
  return run.then(
    ({ stdout, stderr }) => ({ code: 0, output: stdout + stderr }),
    (err: { code: number; stdout: string; stderr: string }) => ({ code: err.code, output: err.stdout + err.stderr }),
  );
}

describe("handler modules that cannot load", () => {
  it.each([
    ["throws on import", BAD_IMPORT, "boom.js", "boom at import"],
    ["exports config.isolation: gpu", BAD_CONFIG, "gpu.js", "isolation"],
  ])("a module that %s: createCluster rejects with HandlerLoadError naming the file, on either node kind", async (_what, dir, file, detail) => {
    for (const kind of [{ threads: 1 }, { processes: 1 }]) {
      const err = await refusal({ handlers: dir, ...kind });
      expect(err).toBeInstanceOf(HandlerLoadError);
      expect(err.code).toBe("E_HANDLER_LOAD");
      expect(err.message).toContain(join(dir, file));
      expect(err.message).toContain(detail);
    }
  });

  it("a JavaScript module with a syntax error is refused naming its file, line and column, on either node kind", async () => {
    const dir = folder("syntax-error", { "half.js": "export default () => {\n  const x = 1;\n  return x +;\n};\n" });
    for (const kind of [{ threads: 1 }, { processes: 1 }]) {
      const err = await refusal({ handlers: dir, ...kind });
      expect(err).toBeInstanceOf(HandlerLoadError);
      expect(err.message).toBe(`${join(dir, "half.js")}: failed to import at ${join(dir, "half.js")}:3:13: Unexpected token ';'`);
    }
  });

  it("a module without a default export function is refused, naming the file", async () => {
    const dir = folder("no-default", { "half.js": "export const config = {};\n" });
    const err = await refusal({ handlers: dir, threads: 1 });
    expect(err).toBeInstanceOf(HandlerLoadError);
    expect(err.message).toContain("half.js");
  });

  it.each([
    ["a BigInt", "export const config = { timeoutMs: 10n };\n", "config.timeoutMs must be an integer from 1 to 2147483647, got 10n"],
    ["an object holding a BigInt", "export const config = { hedgeAfterMs: { ms: 10n } };\n", "config.hedgeAfterMs must be"],
    ["a getter that throws", 'export default { default: () => 1, config: { get timeoutMs() { throw new Error("no config today"); } } };\n', "no config today"],
  ])("a config holding %s is refused naming the file, on either node kind", async (_what, text, detail) => {
    const dir = folder(`config-${_what.replace(/\W+/g, "-")}`, { "odd.js": text.includes("export default") ? text : text + "export default () => 1;\n" });
    for (const kind of [{ threads: 1 }, { processes: 1 }]) {
      const err = await refusal({ handlers: dir, ...kind });
      expect(err).toBeInstanceOf(HandlerLoadError);
      expect(err.message).toContain(join(dir, "odd.js"));
      expect(err.message).toContain(detail);
    }
  });

  it("a file whose name is not a handler name is refused, naming the file", async () => {
    const dir = folder("bad-name", { "two words.js": "export default () => 1;\n" });
    const err = await refusal({ handlers: dir, threads: 1 });
    expect(err).toBeInstanceOf(HandlerLoadError);
    expect(err.message).toContain("two words.js");
  });

  it.each([
    ["throws on import", BAD_IMPORT, "boom.js"],
    ["has an invalid config", BAD_CONFIG, "gpu.js"],
  ])("crew start with a module that %s exits non-zero and prints the file", async (_what, dir, file) => {
    const { code, output } = await crewStart(["--handlers", dir, "--threads", "1"]);
    expect(code).not.toBe(0);
    expect(output).toContain("E_HANDLER_LOAD");
    expect(output).toContain(file);
  });
});

describe("handlers folders that hold nothing to run", () => {
  it.each([
    ["missing", () => join(scratch, "does-not-exist")],
    ["empty", () => folder("empty")],
    ["without handler modules", () => folder("no-modules", { "README.md": "# hi\n", "types.d.ts": "export {};\n", ".hidden.js": "" })],
    ["a file, not a folder", () => join(BAD_IMPORT, "fine.js")],
  ])("a %s folder: InvalidOptionError naming the folder", async (_what, makeDir) => {
    const dir = makeDir();
    const err = await refusal({ handlers: dir, threads: 1 });
    expect(err).toBeInstanceOf(InvalidOptionError);
    expect(err.code).toBe("E_INVALID_OPTION");
    expect(err.message).toContain(dir);
  });

  it("crew start with a missing folder exits non-zero and names it and its flag", async () => {
    const dir = join(scratch, "nowhere");
    const { code, output } = await crewStart(["--handlers", dir, "--threads", "1"]);
    expect(code).not.toBe(0);
    // A bad value on the command line is named by its flag, like every other (issue 10).
    expect(output).toContain("--handlers folder");
    expect(output).toContain(dir);
  });
});

describe("bad options", () => {
  const cases: Array<[ClusterOptions, string]> = [
    [{ threads: -1 }, "threads"],
    [{ threads: 1.5 }, "threads"],
    [{ processes: "2" as unknown as number }, "processes"],
    [{ threads: 0, processes: 0 }, "threads and processes"],
    [{ balancer: "nope" as never }, "balancer"],
    [{ timeoutMs: 0 }, "timeoutMs"],
    [{ maxAttempts: 0 }, "maxAttempts"],
    [{ maxQueue: -1 }, "maxQueue"],
    [{ maxFrameBytes: 10 }, "maxFrameBytes"],
    [{ nodeMemoryMb: 1 }, "nodeMemoryMb"],
    [{ maxConnectionInflight: 0 }, "maxConnectionInflight"],
    [{ logLevel: "loud" }, "logLevel"],
    [{ handlers: "" }, "handlers"],
  ];

  it.each(cases)("%o: InvalidOptionError whose message names %s", async (options, name) => {
    const err = await refusal({ handlers: join(FIXTURES, "handlers"), threads: 1, ...options });
    expect(err).toBeInstanceOf(InvalidOptionError);
    expect(err.message).toContain(name);
  });

  it("crew start --threads -1 exits non-zero and names the option", async () => {
    const { code, output } = await crewStart(["--threads", "-1"]);
    expect(code).not.toBe(0);
    expect(output).toContain("threads");
  });

  it("crew start --balancer nope exits non-zero and names the option", async () => {
    const { code, output } = await crewStart(["--balancer", "nope", "--threads", "1"]);
    expect(code).not.toBe(0);
    expect(output).toContain("balancer");
  });

  it("listen() with a port out of range: InvalidOptionError naming the port, and the cluster still closes", async () => {
    const cluster = await createCluster({ handlers: join(FIXTURES, "handlers"), threads: 1, logLevel: "silent" });
    try {
      await expect(cluster.listen({ port: 70_000 })).rejects.toThrow(InvalidOptionError);
      await expect(cluster.listen({ port: 70_000 })).rejects.toThrow(/port/);
    } finally {
      await cluster.close();
    }
  });
});
