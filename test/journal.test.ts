/**
 * The SQLite journal with real files, real primaries in child processes and real
 * `kill -9`: a keyed job resumes from its last checkpoint after its primary dies, its
 * attempts counting on; its reply is replayed, across a second restart too; a deadline
 * that passed while the primary was down answers E_TIMEOUT; expired replies go; a
 * journal from another schema version, another application or a corrupt file is refused
 * and left as it is.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCluster, type CrewError, JournalError } from "crew";
import { formatStatus } from "../dist/commands/status-format.js";
import { fingerprintOf } from "../dist/store/keyed.js";
import { Gate } from "./helpers/cluster.js";
import { NdjsonSocket } from "./helpers/ndjson-socket.js";
import { PrimaryProcess } from "./helpers/primary-process.js";
import { freePorts } from "./helpers/redis-server.js";

const HANDLERS = fileURLToPath(new URL("./fixtures/journal", import.meta.url));

let dir: string;
let gate: Gate;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "crew-journal-"));
  gate = await Gate.open();
});

afterAll(async () => {
  await gate.close();
  rmSync(dir, { recursive: true, force: true });
});

async function primaryArgs(file: string): Promise<string[]> {
  const [port, httpPort] = await freePorts(2);
  return ["--handlers", HANDLERS, "--threads", "1", "--processes", "0", "--port", String(port), "--http-port", String(httpPort), "--journal", file];
}

const portOf = (args: string[]): number => Number(args[args.indexOf("--port") + 1]);

describe("a primary killed with kill -9 and started again on its journal", () => {
  it("resumes the job from its last checkpoint, counts the attempt cut short, and replays the reply across a second restart", async () => {
    const file = join(dir, "resume.db");
    const args = await primaryArgs(file);
    const payload = { n: 6, hold: { port: gate.port, at: 3 } };
    let primary = await PrimaryProcess.start(args);
    const first = await NdjsonSocket.connect(portOf(args));
    first.send({ id: 1, handler: "ledger", payload, idempotencyKey: "job-1" });
    const arrival = await gate.arrival(); // checkpoint { i: 3 } has resolved, so it is committed
    expect(arrival.attempt).toBe(1);
    await primary.kill9();
    await first.closed;
    expect(first.replies).toEqual([]);

    primary = await PrimaryProcess.start(args);
    expect(await primary.waitFor("journaled requests queued again")).toMatchObject({ requeued: 1 });
    const again = await NdjsonSocket.connect(portOf(args));
    const reply = await again.request({ id: 1, handler: "ledger", payload, idempotencyKey: "job-1" });
    expect(reply).toMatchObject({ ok: true, result: { i: 6, resumedFrom: 3, attempt: 2 }, meta: { attempts: 2 } });
    const replay = await again.request({ id: 2, handler: "ledger", payload, idempotencyKey: "job-1" });
    expect(replay).toMatchObject({ ok: true, result: { i: 6, resumedFrom: 3, attempt: 2 }, meta: { replayed: true, attempts: 2 } });
    await again.close();
    await primary.kill9();

    primary = await PrimaryProcess.start(args);
    expect(primary.lines.some((l) => l.msg === "journaled requests queued again")).toBe(false); // nothing was open
    const third = await NdjsonSocket.connect(portOf(args));
    const kept = await third.request({ id: 1, handler: "ledger", payload, idempotencyKey: "job-1" });
    expect(kept).toMatchObject({ ok: true, result: { resumedFrom: 3, attempt: 2 }, meta: { replayed: true } });
    const conflict = await third.request({ id: 2, handler: "ledger", payload: { n: 1 }, idempotencyKey: "job-1" });
    expect(conflict.error?.code).toBe("E_IDEMPOTENCY_CONFLICT");
    await third.close();
    await primary.stop();
  });

  it("answers E_TIMEOUT to whoever comes when the deadline passed while the primary was down", async () => {
    const file = join(dir, "deadline.db");
    const args = await primaryArgs(file);
    const payload = { n: 2, hold: { port: gate.port, at: 1 } };
    let primary = await PrimaryProcess.start(args);
    const s = await NdjsonSocket.connect(portOf(args));
    s.send({ id: 1, handler: "ledger", payload, idempotencyKey: "late", timeoutMs: 3000 });
    await gate.arrival();
    // The primary accepted the request before its handler reached the gate: its deadline
    // is at the latest 3 s from now (a stamp taken before sending is no bound: a loaded
    // primary may read the frame later, and its deadline is then later too).
    const deadline = Date.now() + 3000;
    await primary.kill9();
    // The primary stays down past the request's deadline: that is the condition under test.
    await sleep(Math.max(0, deadline - Date.now()) + 50);
    primary = await PrimaryProcess.start(args);
    const back = await NdjsonSocket.connect(portOf(args));
    const reply = await back.request({ id: 1, handler: "ledger", payload, idempotencyKey: "late", timeoutMs: 3000 });
    expect(reply.error?.code).toBe("E_TIMEOUT");
    expect(reply.error?.message).toMatch(/while the primary was down/);
    expect(reply.meta).toMatchObject({ attempts: 1, replayed: true });
    await back.close();
    await primary.stop();
  });
});

describe("kept replies expire", () => {
  it("deletes a reply after resultTtlMs, after which the key runs again", async () => {
    const file = join(dir, "ttl.db");
    // Long enough that the replay below comes before the expiry on a loaded machine.
    const open = () => createCluster({ handlers: HANDLERS, threads: 1, processes: 0, journal: file, resultTtlMs: 2000, logLevel: "silent" });
    let cluster = await open();
    try {
      const first = await cluster.call("nap", { ms: 0 }, { idempotencyKey: "short-lived" });
      expect((await cluster.call("nap", { ms: 0 }, { idempotencyKey: "short-lived" })).meta.replayed).toBe(true);
      await expect.poll(async () => (await cluster.status()).store.kept, { timeout: 30_000, interval: 50 }).toBe(0);
      // The primary holds the journal's lock while it runs: the file is read between two primaries.
      await cluster.close();
      const reader = new Database(file, { readonly: true });
      await expect.poll(() => (reader.prepare("SELECT count(*) AS n FROM requests").get() as { n: number }).n).toBe(0);
      reader.close();
      cluster = await open();
      const fresh = await cluster.call("nap", { ms: 0 }, { idempotencyKey: "short-lived" });
      expect(fresh.ok && first.ok).toBe(true);
      expect(fresh.meta.replayed).toBeUndefined();
      expect((await cluster.status()).store).toMatchObject({ kind: "journal", file, open: 0, kept: 1 });
    } finally {
      await cluster.close();
    }
  });
});

describe("a journal written by schema version 1", () => {
  it("is migrated: its kept reply replays, its open request runs again, and the file says version 2", async () => {
    const file = join(dir, "v1.db");
    const v1 = new Database(file);
    v1.exec(`CREATE TABLE requests (key TEXT PRIMARY KEY, request_id TEXT NOT NULL, handler TEXT NOT NULL, payload TEXT,
      fingerprint TEXT NOT NULL, priority INTEGER NOT NULL, timeout_ms INTEGER NOT NULL, deadline INTEGER NOT NULL,
      accepted_at INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, checkpoint TEXT, reply TEXT, expires_at INTEGER) WITHOUT ROWID;
      CREATE INDEX requests_expiry ON requests (expires_at) WHERE expires_at IS NOT NULL;`);
    v1.pragma("application_id = 0x63726577");
    v1.pragma("user_version = 1");
    const payload = JSON.stringify({ ms: 0 });
    const insert = v1.prepare("INSERT INTO requests VALUES (?, '', 'nap', ?, ?, 0, 60000, ?, ?, ?, NULL, ?, ?)");
    const now = Date.now();
    const reply = JSON.stringify({ ok: true, json: JSON.stringify({ node: 99, attempt: 1 }), meta: { node: 99, attempts: 1, ms: 1 } });
    insert.run("kept-v1", payload, fingerprintOf("nap", payload), now + 60_000, now - 10, 1, reply, now + 60_000);
    insert.run("open-v1", payload, fingerprintOf("nap", payload), now + 60_000, now - 5, 1, null, null);
    v1.close();
    const cluster = await createCluster({ handlers: HANDLERS, threads: 1, processes: 0, journal: file, logLevel: "silent" });
    try {
      const kept = await cluster.call("nap", { ms: 0 }, { idempotencyKey: "kept-v1" });
      expect(kept).toMatchObject({ ok: true, result: { node: 99, attempt: 1 }, meta: { replayed: true } });
      const open = await cluster.call("nap", { ms: 0 }, { idempotencyKey: "open-v1" });
      expect(open).toMatchObject({ ok: true, result: { attempt: 2 } });
      expect((await cluster.status()).store).toMatchObject({ open: 0, kept: 2 });
    } finally {
      await cluster.close();
    }
    const reader = new Database(file, { readonly: true });
    expect(reader.pragma("user_version", { simple: true })).toBe(2);
    expect(reader.prepare("SELECT key FROM requests ORDER BY row").all()).toEqual([{ key: "kept-v1" }, { key: "open-v1" }]);
    reader.close();
  });
});

describe("a journal crew must not use is refused and left as it is", () => {
  it("refuses a journal another primary has open (it would run that primary's open requests a second time)", async () => {
    const file = join(dir, "shared.db");
    const first = await createCluster({ handlers: HANDLERS, threads: 1, processes: 0, journal: file, logLevel: "silent" });
    try {
      await first.run("nap", { ms: 0 }, { idempotencyKey: "mine" });
      const error = await createCluster({ handlers: HANDLERS, threads: 1, processes: 0, journal: file, logLevel: "silent" }).then(
        () => null,
        (err: unknown) => err,
      );
      expect(error).toBeInstanceOf(JournalError);
      expect((error as CrewError).message).toBe(`journal ${file} is in use by another primary: give each primary its own journal`);
    } finally {
      await first.close();
    }
    const next = await createCluster({ handlers: HANDLERS, threads: 1, processes: 0, journal: file, logLevel: "silent" });
    try {
      expect((await next.call("nap", { ms: 0 }, { idempotencyKey: "mine" })).meta.replayed).toBe(true);
    } finally {
      await next.close();
    }
  });

  async function refused(file: string): Promise<CrewError> {
    const before = readFileSync(file);
    const error = await createCluster({ handlers: HANDLERS, threads: 1, processes: 0, journal: file, logLevel: "silent" }).then(
      () => null,
      (err: unknown) => err,
    );
    expect(error).toBeInstanceOf(JournalError);
    expect(readFileSync(file).equals(before)).toBe(true);
    return error as CrewError;
  }

  it("refuses a journal from another schema version", async () => {
    const file = join(dir, "newer.db");
    const cluster = await createCluster({ handlers: HANDLERS, threads: 1, processes: 0, journal: file, logLevel: "silent" });
    await cluster.run("nap", { ms: 0 }, { idempotencyKey: "kept" });
    await cluster.close();
    const db = new Database(file);
    db.pragma("user_version = 3");
    db.close();
    const error = await refused(file);
    expect(error.message).toContain(file);
    expect(error.message).toMatch(/schema version 3 \(a newer crew wrote it\); this crew reads version 2/);
  });

  it("refuses a file that is not a database, and an SQLite database crew did not write", async () => {
    const garbage = join(dir, "garbage.db");
    writeFileSync(garbage, "this is not an SQLite database, and it is long enough to have a header ".repeat(20));
    expect((await refused(garbage)).message).toMatch(/not a readable crew journal|cannot be opened/);
    const foreign = join(dir, "foreign.db");
    const db = new Database(foreign);
    db.exec("CREATE TABLE orders (id INTEGER PRIMARY KEY)");
    db.close();
    expect((await refused(foreign)).message).toMatch(/not a crew journal/);
  });

  it("crew start exits non-zero naming the file", async () => {
    const file = join(dir, "newer.db");
    const primary = PrimaryProcess.spawn(await primaryArgs(file));
    const { code } = await primary.exited;
    expect(code).not.toBe(0);
    expect(primary.stderr.join("") + JSON.stringify(primary.lines)).toContain("schema version 3");
  });
});

describe("a journal that cannot be written (a full disk)", () => {
  it("keyed checkpointing jobs still answer, once, instead of waiting at ctx.checkpoint() until their deadline; the journal then catches up", async () => {
    // 3 jobs at once, each writing ten 200 KB checkpoints: 6 MB through the write-ahead
    // log, which SQLite only resets past 4 MB, against a 2 MB cap on the primary's file
    // sizes, so commits fail with EFBIG as on a full disk. The rows themselves (600 KB)
    // fit: once a retry has reset the log, the kept writes commit (group-commit.ts).
    const file = join(dir, "full.db");
    const args = [...(await primaryArgs(file)), "--node-concurrency", "5"];
    args[args.indexOf("--threads") + 1] = "4";
    const primary = await PrimaryProcess.start(args, { fileSizeKb: 2048 });
    try {
      const s = await NdjsonSocket.connect(portOf(args));
      const pad = "x".repeat(200_000);
      const replies = await Promise.all(
        Array.from({ length: 3 }, (_, i) => s.request({ id: i, handler: "ledger", payload: { n: 10, pad }, idempotencyKey: `full-${i}`, timeoutMs: 30_000 })),
      );
      await primary.waitFor("journal commit failed: its writes are kept and retried until they commit");
      for (const reply of replies) expect(reply).toMatchObject({ ok: true, result: { i: 10 } });
      await s.ping();
      expect(s.replies).toHaveLength(4);
      // The replies cleared the checkpoints: the kept writes fit now, and commit.
      expect(await primary.waitFor("journal caught up: the writes kept after a failed commit have committed")).toMatchObject({ dropped: 0 });
      s.socket.destroy();
    } finally {
      await primary.kill9();
    }
  });
});

describe("the journal in metrics and crew status", () => {
  it("counts journal writes, commits, replays and joins, and crew status shows the file, size and open requests", async () => {
    const file = join(dir, "metrics.db");
    const cluster = await createCluster({ handlers: HANDLERS, threads: 1, processes: 0, journal: file, logLevel: "silent" });
    try {
      const { httpPort } = await cluster.listen({ port: 0, httpPort: 0 });
      await cluster.run("nap", { ms: 0 }, { idempotencyKey: "m1" });
      await cluster.run("nap", { ms: 0 }, { idempotencyKey: "m1" });
      const text = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
      expect(text).toMatch(/^crew_idempotent_replayed_total 1$/m);
      expect(text).toMatch(/^crew_idempotent_joined_total 0$/m);
      const writes = Number(/^crew_journal_writes_total (\d+)$/m.exec(text)?.[1]);
      expect(writes).toBeGreaterThanOrEqual(1); // the request, its attempt and its reply fold into one row when they share a commit
      expect(Number(/^crew_journal_commit_seconds_count (\d+)$/m.exec(text)?.[1])).toBeGreaterThan(0);
      expect(text).toMatch(/^crew_journal_retained_writes 0$/m);
      expect(text).toMatch(/^crew_journal_dropped_writes_total 0$/m);
      const shown = formatStatus(await cluster.status());
      expect(shown).toMatch(new RegExp(`^journal +${file.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")} · \\d+\\.\\d MiB · 0 open · 1 replies kept`, "m"));
    } finally {
      await cluster.close();
    }
  });
});
