/**
 * `crew start`'s options, as a user meets them: checked before any node starts, one
 * line naming the flag as typed, flags over CREW_* variables over crew.config.json
 * (seen through --print-config), and createCluster's own checks of its keys and handlers.
 */
import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { createCluster, InvalidOptionError } from "crew";

const BIN = fileURLToPath(new URL("../bin/crew.js", import.meta.url));
const WORKERS = fileURLToPath(new URL("../workers", import.meta.url));
const scratch = mkdtempSync(join(tmpdir(), "crew-cli-options-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the real CLI to its end in `cwd`, with `env` added to a CREW_*-free environment. */
function crew(args: string[], options: { cwd?: string; env?: Record<string, string> } = {}): Promise<Outcome> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("CREW_")));
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { cwd: options.cwd ?? scratch, env: { ...env, ...options.env }, timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code) : 0, stdout, stderr });
    });
  });
}

/** A folder under the scratch dir, holding the given files. */
function folder(name: string, files: Record<string, string> = {}): string {
  const dir = join(scratch, name);
  mkdirSync(dir, { recursive: true });
  for (const [file, text] of Object.entries(files)) writeFileSync(join(dir, file), text);
  return dir;
}

async function printConfig(args: string[], options: { cwd?: string; env?: Record<string, string> } = {}) {
  const out = await crew(["start", "--print-config", ...args], options);
  expect(out.stderr).toBe("");
  expect(out.code).toBe(0);
  return JSON.parse(out.stdout) as { options: Record<string, unknown>; from: Record<string, string>; configFile: string | null };
}

describe("crew start checks every option before any node starts", () => {
  it("a TCP port in use is one line naming --port, exit 1, no stack and no node started", async () => {
    const taken: Server = createServer();
    await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve));
    const port = (taken.address() as { port: number }).port;
    try {
      const out = await crew(["start", "--handlers", WORKERS, "--port", String(port), "--http-port", "0", "--threads", "1"]);
      expect(out.code).toBe(1);
      expect(out.stderr).toBe(`crew: TCP port ${port} on 127.0.0.1 is already in use (--port)\n`);
      expect(out.stdout).not.toContain("node up");
    } finally {
      taken.close();
    }
  });

  it("an HTTP port in use names --http-port, or CREW_HTTP_PORT when it came from there", async () => {
    const taken: Server = createServer();
    await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve));
    const port = (taken.address() as { port: number }).port;
    try {
      const flag = await crew(["start", "--handlers", WORKERS, "--port", "0", "--http-port", String(port), "--threads", "1"]);
      expect(flag.stderr).toBe(`crew: HTTP port ${port} on 127.0.0.1 is already in use (--http-port)\n`);
      const env = await crew(["start", "--handlers", WORKERS, "--port", "0", "--threads", "1"], { env: { CREW_HTTP_PORT: String(port) } });
      expect(env.stderr).toBe(`crew: HTTP port ${port} on 127.0.0.1 is already in use (CREW_HTTP_PORT)\n`);
    } finally {
      taken.close();
    }
  });

  it("the same port for TCP and HTTP, a foreign host, a bad number and a duplicated flag are refused by name", async () => {
    const cases: Array<[string[], string]> = [
      [["--threads", "1", "--port", "7470", "--http-port", "7470"], "crew: --http-port must differ from the TCP port: both are 7470 (HTTP and TCP need a port each)\n"],
      [["--threads", "1", "--host", "192.0.2.1"], "crew: 192.0.2.1 is not an address of this machine (--host)\n"],
      [["--threads", "abc"], 'crew: --threads must be a number, got "abc"\n'],
      [["--threads", "1", "--node-memory-mb", "1"], "crew: --node-memory-mb must be an integer from 16 to 1048576, got 1\n"],
      [["--threads", "1", "--port", "7070", "--port", "7071"], 'crew: --port was given 2 times ("7070", "7071"): give it once\n'],
      [["--threads", "1", "--balancer", "fastest"], 'crew: --balancer must be one of least-outstanding, round-robin, random, p2c, weighted, hash; got "fastest"\n'],
      [["--threads", "0", "--processes", "0"], "crew: --threads and --processes must not both be 0 (or both start at 0) without redis: a cluster needs at least one node (with redis, a host with none is a gateway)\n"],
    ];
    for (const [args, message] of cases) {
      const out = await crew(["start", "--handlers", WORKERS, ...args]);
      expect({ args, stderr: out.stderr, code: out.code }).toEqual({ args, stderr: message, code: 1 });
    }
  });

  it("without ./workers and without --handlers, says to pass --handlers", async () => {
    const out = await crew(["start"], { cwd: folder("empty-project") });
    expect(out.code).toBe(1);
    expect(out.stderr).toMatch(/^crew: there is no \.\/workers folder in .*empty-project: pass --handlers DIR/);
  });

  it("a --handlers folder that does not exist is one line naming --handlers, before any node starts", async () => {
    const missing = join(scratch, "no-such-folder");
    const out = await crew(["start", "--handlers", missing, "--port", "0", "--http-port", "0"]);
    expect(out.code).toBe(1);
    expect(out.stderr).toBe(`crew: --handlers folder ${missing} cannot be read: ENOENT: no such file or directory, stat '${missing}'\n`);
    expect(out.stdout).not.toContain("starting nodes");
  });
});

describe("a flag or word the command does not take", () => {
  it("is named, with the nearest flag of that command, and the help to read", async () => {
    const cases: Array<[string[], string]> = [
      [["start", "--threds", "2"], "crew: unknown flag --threds (did you mean --threads?)\nRun crew start --help for usage.\n"],
      [["start", "--no-wtch", "--zzzzzz"], "crew: unknown flag --wtch (did you mean --watch?); unknown flag --zzzzzz\nRun crew start --help for usage.\n"],
      [["run", "echo", "1", "--prot", "5"], "crew: unknown flag --prot (did you mean --port?)\nRun crew run --help for usage.\n"],
      [["run", "echo", "1", "2"], 'crew: unexpected argument "2"\nRun crew run --help for usage.\n'],
    ];
    for (const [args, message] of cases) {
      const out = await crew(args);
      expect({ args, code: out.code, stderr: out.stderr }).toEqual({ args, code: 2, stderr: message });
    }
  });
});

describe("run, status and bench name their flags too", () => {
  it("quote a bad number, refuse a flag given twice, and name the flag of a value out of range", async () => {
    const cases: Array<[string[], number, string]> = [
      [["run", "echo", "1", "--priority", "high"], 2, 'crew: --priority must be a number, got "high"\n'],
      [["run", "echo", "1", "--timeout-ms", "1", "--timeout-ms", "2"], 2, 'crew: --timeout-ms was given 2 times ("1", "2"): give it once\n'],
      [["run", "echo", "1", "--idempotency-key", "a", "--idempotency-key", "b"], 2, 'crew: --idempotency-key was given 2 times ("a", "b"): give it once\n'],
      [["status", "--interval-ms", "soon"], 2, 'crew: --interval-ms must be a number, got "soon"\n'],
      [["bench", "--connections", "0", "--requests", "1"], 1, "crew: --connections must be a positive integer, got 0\n"],
      [["bench", "--duration", "5x"], 1, 'crew: --duration must be a duration like 500ms, 10s or 2m, got "5x"\n'],
      [["status", "--port", "70000"], 1, "crew: --port must be an integer from 0 to 65535, got 70000\n"],
    ];
    for (const [args, code, message] of cases) {
      const out = await crew(args);
      expect({ args, code: out.code, stderr: out.stderr.replace(/^Run crew \w+ --help for usage.\n/m, "") }).toEqual({ args, code, stderr: message });
    }
  });
});

describe("flags win over CREW_* variables, which win over the config file", () => {
  it("each source shows through --print-config, with where each value came from", async () => {
    const project = folder("layered", { "crew.config.json": JSON.stringify({ threads: 3, maxQueue: 5, nodeMemoryMb: 512, handlers: "jobs" }) });
    const got = await printConfig(["--threads", "2"], { cwd: project, env: { CREW_MAX_QUEUE: "7", CREW_PORT: "9100" } });
    expect(got.options).toMatchObject({ threads: 2, maxQueue: 7, nodeMemoryMb: 512, port: 9100, httpPort: 7071, host: "127.0.0.1", maxAttempts: 3 });
    // A relative path in the file is relative to the file's folder.
    expect(got.options.handlers).toBe(join(project, "jobs"));
    expect(got.from).toMatchObject({ threads: "--threads", maxQueue: "CREW_MAX_QUEUE", port: "CREW_PORT", nodeMemoryMb: "crew.config.json: nodeMemoryMb" });
    expect(got.configFile).toBe("crew.config.json");
  });

  it("--print-config shows the --redis URL without its password, as the logs do", async () => {
    const got = await printConfig(["--redis", "redis://crew:s3cret@10.0.0.5:6379/2"]);
    expect(got.options.redis).toBe("redis://crew:***@10.0.0.5:6379/2");
  });

  it("--config FILE (or CREW_CONFIG) names another file; every flag has its variable", async () => {
    const file = join(folder("elsewhere", { "prod.json": JSON.stringify({ processes: 2, threads: 0, drainTimeoutMs: 5000 }) }), "prod.json");
    const byFlag = await printConfig(["--config", file]);
    expect(byFlag.options).toMatchObject({ processes: 2, threads: 0, drainTimeoutMs: 5000 });
    const byEnv = await printConfig([], { env: { CREW_CONFIG: file, CREW_KILL_GRACE_MS: "250", CREW_LOG_LEVEL: "warn", CREW_BALANCER: "p2c" } });
    expect(byEnv.options).toMatchObject({ processes: 2, killGraceMs: 250, logLevel: "warn", balancer: "p2c" });
  });

  it("a bad value names its source: the variable, or the file and key", async () => {
    const env = await crew(["start", "--print-config"], { env: { CREW_NODE_MEMORY_MB: "lots" } });
    expect(env).toMatchObject({ code: 1, stderr: 'crew: CREW_NODE_MEMORY_MB must be a number, got "lots"\n' });
    const project = folder("bad-file", { "crew.config.json": JSON.stringify({ maxAttempts: 0 }) });
    const file = await crew(["start", "--print-config"], { cwd: project });
    expect(file).toMatchObject({ code: 1, stderr: "crew: crew.config.json: maxAttempts must be an integer from 1 to 100, got 0\n" });
    const typo = folder("typo-file", { "crew.config.json": JSON.stringify({ maxAttempt: 2 }) });
    expect(await crew(["start", "--print-config"], { cwd: typo })).toMatchObject({
      code: 1,
      stderr: 'crew: crew.config.json: unknown option "maxAttempt" (did you mean maxAttempts?)\n',
    });
  });
});

describe("the flag table", () => {
  it("has a flag for every option resolveOptions knows, and the README's CLI block lists every flag", async () => {
    const { resolveOptions } = await import("../dist/options.js");
    const { START_FLAGS, kebab } = await import("../dist/commands/flags.js");
    // logger is for embedding only; maxThreads/maxProcesses come from --threads/--processes MIN..MAX.
    const derived = ["logger", "maxThreads", "maxProcesses"];
    expect(Object.keys(resolveOptions({})).filter((k) => !(k in START_FLAGS) && !derived.includes(k))).toEqual([]);
    const readme = readFileSync(fileURLToPath(new URL("../README.md", import.meta.url)), "utf8");
    const cliBlock = readme.slice(readme.indexOf("## CLI"), readme.indexOf("## Embedding"));
    expect(Object.keys(START_FLAGS).map((k) => `--${kebab(k)}`).filter((flag) => !cliBlock.includes(`[${flag}`))).toEqual([]);
  });
});

describe("createCluster's options", () => {
  it("rejects an unknown key, naming it and the near one", async () => {
    const err = await createCluster({ handlers: WORKERS, threads: 1, maxAttempt: 2 } as never).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidOptionError);
    expect((err as Error).message).toBe('unknown option "maxAttempt" (did you mean maxAttempts?)');
    const listen = await createCluster({ handlers: WORKERS, threads: 1, port: 7070 } as never).catch((e: unknown) => e);
    expect((listen as Error).message).toBe("port is an option of cluster.listen(), not of createCluster()");
  });

  it("takes handlers as a URL or a file: string, and a relative path from the cwd", async () => {
    for (const handlers of [pathToFileURL(`${WORKERS}/`), pathToFileURL(WORKERS).href]) {
      const cluster = await createCluster({ handlers, threads: 1, logLevel: "silent" });
      try {
        expect(cluster.options.handlers).toBe(WORKERS);
        expect(await cluster.run("echo", { via: String(handlers) })).toEqual({ via: String(handlers) });
      } finally {
        await cluster.close();
      }
    }
    const relative = await createCluster({ handlers: "workers", threads: 1, logLevel: "silent" });
    await relative.close();
    expect(relative.options.handlers).toBe(join(process.cwd(), "workers"));
  });
});
