// Servers under test run in child processes of their own, so the load generator (this
// process) and the server never share an event loop. Each server script sends
// { port, httpPort? } over IPC once it listens, and exits when its IPC channel closes.
import { fork } from "node:child_process";
import { fileURLToPath } from "node:url";

const SERVERS = new URL("../servers/", import.meta.url);
const START_TIMEOUT_MS = 30_000;

/** Starts benchmarks/servers/<script> with args; resolves once it reports its ports. */
export function startServer(script, args = []) {
  const child = fork(fileURLToPath(new URL(script, SERVERS)), args, { execArgv: [], stdio: ["ignore", "inherit", "inherit", "ipc"] });
  const exited = new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${script} ${args.join(" ")} did not listen within ${START_TIMEOUT_MS} ms`));
    }, START_TIMEOUT_MS);
    child.once("message", (ports) => {
      clearTimeout(timer);
      if (ports.error) {
        child.kill("SIGKILL");
        reject(new Error(`${script} ${args.join(" ")}: ${ports.error}`));
        return;
      }
      resolve({
        ...ports,
        pid: child.pid,
        /** Asks it to stop (it drains), and kills it if it has not exited within 5 s. */
        async close() {
          if (child.exitCode !== null || child.signalCode !== null) return;
          child.disconnect();
          const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
          await exited;
          clearTimeout(timer);
        },
      });
    });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`${script} ${args.join(" ")} exited before listening (${code ?? signal})`));
    });
  });
}

/** The child side: report the ports, and run `stop` when the parent goes away. */
export function serve(ports, stop) {
  process.send(ports);
  process.once("disconnect", async () => {
    await stop();
    process.exit(0);
  });
}

/** The child side of a failure to start: the parent rejects with this message. */
export function failed(err) {
  process.send({ error: err instanceof Error ? err.message : String(err) }, () => process.exit(1));
}
