// Several-hosts benchmarks: a redis-server of their own on a free port (AOF, fsync every
// second, as a production Redis would run) and `crew start` processes joined to it.
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort } from "./free-port.js";

const CREW = fileURLToPath(new URL("../../bin/crew.js", import.meta.url));
// The same handlers as the several-hosts tests: an echo and a checkpointing job.
export const HOST_HANDLERS = fileURLToPath(new URL("../../test/fixtures/hosts", import.meta.url));

export const redisInstalled = () => spawnSync("redis-server", ["--version"]).status === 0;


/** A redis-server on a free port; `close()` kills it and removes its files. */
export async function startRedis() {
  const dir = mkdtempSync(join(tmpdir(), "crew-bench-redis-"));
  const port = await freePort();
  const child = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--save", "", "--appendonly", "yes", "--appendfsync", "everysec"], { stdio: ["ignore", "pipe", "inherit"] });
  await new Promise((resolve, reject) => {
    let out = "";
    child.stdout.on("data", (c) => {
      out += c;
      if (out.includes("Ready to accept connections")) resolve();
    });
    child.once("exit", (code) => reject(new Error(`redis-server exited (${code}): ${out.slice(-500)}`)));
  });
  child.stdout.resume();
  return {
    url: `redis://127.0.0.1:${port}`,
    pid: child.pid,
    async close() {
      child.kill("SIGKILL");
      await new Promise((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve() : child.once("exit", resolve)));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** `crew start` with these flags (JSON logs, at info at least: its "listening" line gives the ports); resolves with its ports once it listens. */
export function startHost(args) {
  const child = spawn(process.execPath, [CREW, "start", "--handlers", HOST_HANDLERS, "--port", "0", "--http-port", "0", ...args], { stdio: ["ignore", "pipe", "inherit"] });
  const exited = new Promise((resolve) => child.once("exit", resolve));
  return new Promise((resolve, reject) => {
    let buf = "";
    const onData = (chunk) => {
      buf += chunk;
      for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (!line.includes('"listening"')) continue;
        const { port, httpPort } = JSON.parse(line);
        child.stdout.off("data", onData);
        child.stdout.resume();
        resolve({
          port,
          httpPort,
          pid: child.pid,
          kill: async () => {
            if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
            await exited;
          },
        });
      }
    };
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", onData);
    exited.then((code) => reject(new Error(`crew start ${args.join(" ")} exited before listening (${code})`)));
  });
}

// Clock ticks per second of /proc's CPU times (usually 100: 10 ms ticks).
const TICKS = Number(spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).stdout) || 100;

function statMicros(file) {
  try {
    const fields = readFileSync(file, "utf8").split(") ")[1].split(" ");
    return ((Number(fields[11]) + Number(fields[12])) * 1e6) / TICKS;
  } catch {
    return NaN;
  }
}

/** CPU time (user + system, µs) a process has used so far, threads included, from /proc (Linux; clock ticks). */
export const cpuMicros = (pid) => statMicros(`/proc/${pid}/stat`);

/** The same for one thread of it: `threadCpuMicros(pid, pid)` is its main thread alone. */
export const threadCpuMicros = (pid, tid) => statMicros(`/proc/${pid}/task/${tid}/stat`);
