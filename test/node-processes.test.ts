/**
 * Node processes never outlive or outsmart their primary, with a real `crew start`:
 * - SIGKILL the primary while a node spins in an endless loop: the node, and the program
 *   its handler started, die anyway (the watchdog thread in the node);
 * - each node process leads its own process group, and a node killed for its deadline
 *   takes the program its handler started with it;
 * - SIGTERM to every process (systemd stopping the whole control group) drains: the job
 *   in flight runs once, on attempt 1, and no node crashes;
 * - a thread blocked in native code does not hold up the exit after the drain;
 * - a log reader that goes away costs log lines only.
 */
import { createConnection } from "node:net";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { alive, CrewProcess, gone, type Line, psField } from "./helpers/crew-process.js";

const HANDLERS = fileURLToPath(new URL("./fixtures/nodes/tree", import.meta.url));
const started: CrewProcess[] = [];
const strays: number[] = [];

afterEach(() => {
  for (const crew of started.splice(0)) crew.kill();
  for (const pid of strays.splice(0)) if (alive(pid)) process.kill(pid, "SIGKILL");
});

function crew(args: string[], options: { detached?: boolean } = {}): CrewProcess {
  const c = new CrewProcess(["--handlers", HANDLERS, ...args], options);
  started.push(c);
  return c;
}

/** Sends one TCP request and resolves with its reply. */
async function request(port: number, frame: object): Promise<Record<string, any>> {
  const socket = createConnection(port, "127.0.0.1");
  socket.write(JSON.stringify(frame) + "\n");
  let text = "";
  socket.setEncoding("utf8");
  for await (const chunk of socket) {
    text += chunk;
    if (text.includes("\n")) break;
  }
  socket.destroy();
  return JSON.parse(text.slice(0, text.indexOf("\n"))) as Record<string, any>;
}

/** The JSON a handler printed, relayed by crew as the msg of a log line. */
function printed(line: Line): Record<string, any> | null {
  try {
    return typeof line.msg === "string" && line.msg.startsWith("{") ? (JSON.parse(line.msg) as Record<string, any>) : null;
  } catch {
    return null;
  }
}

describe.each([
  { kind: "process", nodes: ["--processes", "1", "--threads", "0"] },
  { kind: "thread", nodes: ["--threads", "1"] },
])("the $kind node of a primary killed with SIGKILL", ({ nodes }) => {
  it("dies within a moment, with the program its handler started, though its event loop is blocked", async () => {
    const c = crew(nodes);
    const port = await c.port();
    void request(port, { id: 1, handler: "spin", payload: { tag: "orphan" } }).catch(() => {});
    const said = printed(await c.waitFor((l) => printed(l)?.spinning === "orphan"))!;
    strays.push(said.nodePid, said.sleepPid);
    expect(alive(said.nodePid)).toBe(true);
    c.kill("SIGKILL");
    await c.exited;
    await gone(said.nodePid);
    await gone(said.sleepPid);
  });
});

describe("process groups", () => {
  it("runs each node process in its own group, and a kill for the deadline ends the programs it started", async () => {
    const c = crew(["--processes", "1", "--threads", "0", "--kill-grace-ms", "50"]);
    const port = await c.port();
    const reply = request(port, { id: 1, handler: "spin", payload: { tag: "tree" }, timeoutMs: 300 });
    const said = printed(await c.waitFor((l) => printed(l)?.spinning === "tree"))!;
    strays.push(said.nodePid, said.sleepPid);
    expect(psField(said.nodePid, "pgid")).toBe(String(said.nodePid));
    expect(psField(said.sleepPid, "pgid")).toBe(String(said.nodePid));
    expect(psField(c.child.pid!, "pgid")).not.toBe(String(said.nodePid));
    expect(await reply).toMatchObject({ ok: false, error: { code: "E_TIMEOUT" } });
    await c.waitFor((l) => l.msg === "node crashed" && l.node === "p0");
    await gone(said.sleepPid);
    await gone(said.nodePid);
  });
});

describe("SIGTERM to every process of the cluster at once (systemd's stop, Ctrl-C)", () => {
  it("reaches no node as a crash: the job in flight runs once, on attempt 1, and crew exits 0", async () => {
    const c = crew(["--processes", "1", "--threads", "1", "--balancer", "round-robin"], { detached: true });
    const port = await c.port();
    const replies = [1, 2].map((id) => request(port, { id, handler: "slow", payload: { ms: 400 } }));
    const pids = new Set<number>();
    for (let seen = 0; seen < 2; seen++) {
      const line = await c.waitFor((l) => printed(l)?.started !== undefined && !pids.has(printed(l)!.pid));
      pids.add(printed(line)!.pid);
    }
    // Every process: the primary's group (as a terminal's Ctrl-C does), and each node's.
    process.kill(-c.child.pid!, "SIGTERM");
    for (const pid of pids) process.kill(pid, "SIGTERM");
    const answers = await Promise.all(replies);
    for (const answer of answers) expect(answer).toMatchObject({ ok: true, result: { attempt: 1 }, meta: { attempts: 1 } });
    expect(await c.exited).toEqual({ code: 0, signal: null });
    expect(c.lines.filter((l) => l.msg === "node crashed")).toEqual([]);
    expect(c.lines.filter((l) => printed(l)?.started !== undefined)).toHaveLength(2);
  });
});

describe("stopping after a thread was given up on", () => {
  it("exits after the drain without waiting for a thread blocked in native code", async () => {
    const c = crew(["--threads", "1", "--kill-grace-ms", "50"]);
    const port = await c.port();
    // The thread blocks in execSync(sleep 600): its deadline passes, the node is replaced.
    expect(await request(port, { id: 1, handler: "native", payload: { s: 600 }, timeoutMs: 200 })).toMatchObject({ ok: false, error: { code: "E_TIMEOUT" } });
    await c.waitFor((l) => l.msg === "node up" && l.restarts === 1);
    expect(await request(port, { id: 2, handler: "talk" })).toMatchObject({ ok: true });
    c.kill("SIGTERM");
    // Waiting on the blocked thread would take 600 s: far past the test's timeout.
    expect(await c.exited).toEqual({ code: 0, signal: null });
  });
});

describe("a log reader that goes away", () => {
  it.each([
    { kind: "thread", nodes: ["--threads", "1"] },
    { kind: "process", nodes: ["--processes", "1", "--threads", "0"] },
  ])("costs log lines only, never the primary or a $kind node", async ({ nodes }) => {
    const c = crew(nodes);
    const port = await c.port();
    // `crew start | head`: the reader closes the pipe.
    c.child.stdout!.destroy();
    for (let id = 1; id <= 20; id++) {
      expect(await request(port, { id, handler: "talk", payload: { lines: 50 } })).toMatchObject({ ok: true, result: "said", meta: { attempts: 1 } });
    }
    expect(c.child.exitCode).toBe(null);
    c.kill("SIGTERM");
    const exit = await c.exited;
    expect(exit.signal === null ? exit.code : exit.signal).toBe(0);
  });
});

describe("--pretty into a pipe or a file", () => {
  it("writes readable lines without colour codes, node output included", async () => {
    const c = crew(["--threads", "1", "--pretty"]);
    // pino-pretty puts each field on a line of its own: `    port: 40123` after "INFO: listening".
    await c.waitFor((l) => /^\s+httpPort: \d+/.test(l.msg));
    const text = c.lines.map((l) => l.msg).join("\n");
    const port = Number(/INFO: listening[^]*?\n\s+port: (\d+)/.exec(text)![1]);
    expect(await request(port, { id: 1, handler: "talk" })).toMatchObject({ ok: true });
    await c.waitFor((l) => /talking 0/.test(l.msg));
    expect(c.lines.filter((l) => l.raw !== true && "level" in l)).toEqual([]);
    expect(c.lines.some((l) => l.msg.includes("\u001b["))).toBe(false);
  });
});
