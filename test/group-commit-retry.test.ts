/**
 * The journal's writes outlive a failed commit: real SQLite files opened with the
 * journal's own settings (WAL, EXCLUSIVE), filled up with `PRAGMA max_page_count` (SQLite
 * answers SQLITE_FULL when the database would grow past it, as on a full disk) and given
 * room back by raising it. The writes of a failed commit commit later, in order and before
 * newer ones, and the failed batch's waiters are rejected at once; a request whose INSERT
 * failed ends up with its latest row; a batch too big for the room given back commits in
 * parts; past the memory cap the oldest writes are dropped, and logged, as is a write no
 * retry can commit. And a write-ahead log that cannot grow (a file-size limit, `ulimit -f`,
 * below the 4 MiB past which SQLite resets it by itself) is reset before a retry.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import type BetterSqlite3 from "better-sqlite3";
import pino, { type Logger } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GroupCommit, MAX_RETAINED_BYTES } from "../dist/store/group-commit.js";
import { openJournalFile } from "../dist/store/journal-file.js";
import { JournalStore } from "../dist/store/journal.js";
import type { NewRequest } from "../dist/store/store.js";

type Database = BetterSqlite3.Database;

let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "crew-commit-retry-"));
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** A pino logger whose lines (parsed) land in `lines`. */
function capture(): { log: Logger; lines: Array<{ level: number; msg: string; [k: string]: unknown }> } {
  const lines: Array<{ level: number; msg: string; [k: string]: unknown }> = [];
  const log = pino({ level: "debug" }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  return { log, lines };
}

const ERROR = 50;
const INFO = 30;

/** The database may not grow by one page: as a full disk. */
function noRoom(db: Database): void {
  db.pragma(`max_page_count = ${db.pragma("page_count", { simple: true }) as number}`);
}

/** `pages` more pages than the database has now. */
function room(db: Database, pages = 1_000_000): void {
  db.pragma(`max_page_count = ${(db.pragma("page_count", { simple: true }) as number) + pages}`);
}

/** Text that needs 2 overflow pages (4 KiB pages): a row that fails on a full database. */
const BIG = "x".repeat(10_000);

/** GroupCommit on a new journal file in the test's folder, with its log lines and the table's statements. */
async function openCommits(name: string) {
  const db = await openJournalFile(join(dir, name), "normal");
  const { log, lines } = capture();
  return { db, log, lines, commits: new GroupCommit(db, log), sql: statements(db) };
}

const LIMITS = { maxKeys: 1000, maxBytes: 1 << 30, ttlMs: 600_000 };

/** A JournalStore on a new file in the test's folder, on a connection the test holds (for its pragmas). */
async function openStore(name: string) {
  const file = join(dir, name);
  const db = await openJournalFile(file, "normal");
  return { file, db, store: JournalStore.fromDatabase(file, db, LIMITS, capture().log) };
}

/** The store a primary started again on `file` opens. */
function reopened(file: string): Promise<JournalStore> {
  return JournalStore.create(file, { ...LIMITS, sync: "normal" }, capture().log);
}

/** The journal's table, written directly: INSERT a row, set its attempts. */
function statements(db: Database) {
  const insert = db.prepare(
    "INSERT INTO requests (row, key, request_id, handler, payload, fingerprint, priority, timeout_ms, deadline, accepted_at) VALUES (?, ?, 'r', 'h', ?, 'f', 0, 1000, 0, 0)",
  );
  const attempts = db.prepare("UPDATE requests SET attempts = ? WHERE row = ?");
  const rows = db.prepare<[], { row: number; attempts: number }>("SELECT row, attempts FROM requests ORDER BY row");
  return {
    insert: (row: number, payload = BIG) => () => void insert.run(row, `k${row}`, payload),
    attempts: (row: number, n: number) => () => void attempts.run(n, row),
    rows: () => rows.all(),
  };
}

/**
 * Polls `check` between short timers until it holds, for progress no event reports (a
 * retry that committed part of the writes kept). Bounded: throws if it never holds.
 */
async function until(check: () => boolean): Promise<void> {
  for (let i = 0; i < 2000; i++) {
    if (check()) return;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  throw new Error("the condition never held");
}

describe("a commit that fails on a full disk", () => {
  it("keeps its writes and commits them once there is room, in order and before newer writes; its waiters are rejected", async () => {
    const db = await openJournalFile(join(dir, "order.db"), "normal");
    expect(db.pragma("journal_mode", { simple: true })).toBe("wal");
    const { log, lines } = capture();
    const commits = new GroupCommit(db, log);
    const sql = statements(db);
    noRoom(db);
    for (let row = 1; row <= 5; row++) commits.add(sql.insert(row), BIG.length);
    await expect(commits.committed()).rejects.toMatchObject({ code: "SQLITE_FULL" });
    // Newer writes: row 1's UPDATE must follow its INSERT, and row 6 the five before it.
    commits.add(sql.attempts(1, 7), 0);
    commits.add(sql.insert(6, "small"), 5);
    await expect(commits.committed()).rejects.toThrow(/being retried/);
    expect(sql.rows()).toEqual([]);
    expect(commits.counters.retained.writes).toBe(7);

    room(db);
    await commits.caughtUp();
    expect(sql.rows()).toEqual([
      { row: 1, attempts: 7 },
      { row: 2, attempts: 0 },
      { row: 3, attempts: 0 },
      { row: 4, attempts: 0 },
      { row: 5, attempts: 0 },
      { row: 6, attempts: 0 },
    ]);
    expect(commits.counters.retained).toMatchObject({ writes: 0, bytes: 0, dropped: 0 });
    const errors = lines.filter((l) => l.level === ERROR);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ msg: expect.stringMatching(/^journal commit failed/), writes: 5, err: { code: "SQLITE_FULL" } });
    expect(lines.filter((l) => l.level === INFO)).toEqual([expect.objectContaining({ msg: expect.stringMatching(/^journal caught up/), writes: 7, dropped: 0 })]);

    // Caught up: the next write commits as before.
    commits.add(sql.insert(7, "after"), 5);
    await expect(commits.committed()).resolves.toBe(true);
    commits.close();
    db.close();
  });

  it("a request whose INSERT failed ends up with its row and its latest attempts, checkpoint and reply, and survives a restart", async () => {
    const { file, db, store } = await openStore("store.db");
    expect(await store.open()).toEqual([]);
    noRoom(db);
    // Two requests in one batch: "a"'s INSERT fails first, so "b"'s never runs in that transaction.
    expect(store.admit(request("a", JSON.stringify(BIG)))).toEqual({ kind: "accepted" });
    expect(store.admit(request("b", "1"))).toEqual({ kind: "accepted" });
    store.attemptStarted("a", 1);
    store.attemptStarted("b", 1);
    await expect(store.checkpoint("b", 1, '{"i":1}')).rejects.toMatchObject({ code: "SQLITE_FULL" });

    // Their later writes, while the INSERTs wait to be retried.
    store.attemptStarted("a", 2);
    store.attemptStarted("b", 2);
    await expect(store.checkpoint("a", 2, '{"i":2}')).rejects.toThrow(/being retried/);
    const reply = { ok: true as const, json: '"done"', meta: { node: "t1", attempts: 2, ms: 3 } };
    await expect(store.finish("b", 2, reply)).rejects.toThrow(/being retried/);

    room(db);
    await store.caughtUp();
    const rows = db.prepare("SELECT key, attempts, checkpoint, reply FROM requests ORDER BY row").all();
    expect(rows).toEqual([
      { key: "a", attempts: 2, checkpoint: '{"i":2}', reply: null },
      { key: "b", attempts: 2, checkpoint: null, reply: JSON.stringify(reply) },
    ]);
    await store.close();

    // A primary started again on the file runs "a" again from its checkpoint, and replays "b".
    const again = await reopened(file);
    expect(await again.open()).toMatchObject([{ idempotencyKey: "a", attempts: 2, checkpoint: '{"i":2}' }]);
    expect(again.admit(request("b", "1"))).toMatchObject({ kind: "replay", reply });
    await again.close();
  });

  it("a batch too big for the room given back commits the part that fits, in smaller transactions, in order", async () => {
    const { db, lines, commits, sql } = await openCommits("chunks.db");
    noRoom(db);
    for (let row = 1; row <= 8; row++) commits.add(sql.insert(row), BIG.length);
    await expect(commits.committed()).rejects.toMatchObject({ code: "SQLITE_FULL" });

    room(db, 12); // 2 overflow pages a row, and leaf pages: room for some of the 8, not all
    await until(() => sql.rows().length > 0);
    const committed = sql.rows().map((r) => r.row);
    expect(committed).toEqual(Array.from({ length: committed.length }, (_, i) => i + 1)); // the oldest first
    expect(committed.length).toBeLessThan(8);

    commits.add(sql.insert(9, "later"), 5);
    room(db);
    await commits.caughtUp();
    expect(sql.rows().map((r) => r.row)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    // Many retries failed along the way, but the log says it once, and once caught up.
    expect(lines.filter((l) => l.level === ERROR)).toHaveLength(1);
    expect(lines.filter((l) => l.level === INFO)).toHaveLength(1);
    commits.close();
    db.close();
  });

  it("past the memory cap the oldest writes kept are dropped, logged with how many; a dropped INSERT's UPDATE changes nothing", async () => {
    const { db, lines, commits, sql } = await openCommits("cap.db");
    noRoom(db);
    // Sizes as the caller states them: three writes holding 1.25 times the cap.
    commits.add(sql.insert(1), MAX_RETAINED_BYTES / 2);
    commits.add(sql.insert(2), MAX_RETAINED_BYTES / 2);
    commits.add(sql.insert(3), MAX_RETAINED_BYTES / 4);
    await expect(commits.committed()).rejects.toMatchObject({ code: "SQLITE_FULL" });
    expect(commits.counters.retained).toMatchObject({ writes: 2, dropped: 1 });
    expect(commits.counters.retained.bytes).toBeLessThanOrEqual(MAX_RETAINED_BYTES);
    expect(lines.filter((l) => l.level === ERROR)).toEqual([
      expect.objectContaining({ msg: expect.stringMatching(/^journal commit failed/) }),
      expect.objectContaining({ msg: expect.stringMatching(/oldest were dropped/), dropped: 1, maxBytes: MAX_RETAINED_BYTES }),
    ]);

    commits.add(sql.attempts(1, 4), 0); // row 1's INSERT is gone: a no-op
    commits.add(sql.attempts(2, 4), 0);
    await expect(commits.committed()).rejects.toThrow(/being retried/);
    room(db);
    await commits.caughtUp();
    expect(sql.rows()).toEqual([
      { row: 2, attempts: 4 },
      { row: 3, attempts: 0 },
    ]);
    expect(lines.find((l) => l.level === INFO)).toMatchObject({ writes: 4, dropped: 1 });
    commits.close();
    db.close();
  });

  it("past the memory cap a DELETE is never dropped: a request released during the outage does not come back at the next start", async () => {
    const { file, db, store } = await openStore("released.db");
    await store.open();
    store.admit(request("k1", '"small"'));
    await store.checkpoint("k1", 0, '{"c":1}'); // k1's row is in the file
    noRoom(db);
    const big = JSON.stringify("x".repeat(10 * 1024 * 1024));
    store.admit(request("k2", big));
    await expect(store.checkpoint("k2", 0, "{}")).rejects.toMatchObject({ code: "SQLITE_FULL" });
    store.release("k1"); // cancelled: its row must go, and its DELETE waits behind k2's INSERT
    for (let i = 3; i <= 9; i++) {
      store.admit(request(`k${i}`, big));
      await store.checkpoint(`k${i}`, 0, "{}").catch(() => {});
    }
    expect(store.counters.retained!.dropped).toBeGreaterThan(0); // 80 MiB of payloads against a 64 MiB cap
    room(db);
    await store.caughtUp();
    await store.close();
    const again = await reopened(file);
    const open = (await again.open()).map((r) => r.idempotencyKey);
    expect(open).not.toContain("k1");
    expect(open).toContain("k9"); // the newest were kept
    await again.close();
  });

  it("a write that fails alone with an error no retry fixes (a constraint) is dropped, and the writes after it commit", async () => {
    const { db, lines, commits, sql } = await openCommits("poison.db");
    commits.add(sql.insert(1, "one"), 3);
    commits.add(sql.insert(1, "again"), 5); // the same rowid: SQLITE_CONSTRAINT_PRIMARYKEY
    commits.add(sql.insert(2, "two"), 3);
    await expect(commits.committed()).rejects.toMatchObject({ code: "SQLITE_CONSTRAINT_PRIMARYKEY" });
    await commits.caughtUp();
    expect(sql.rows().map((r) => r.row)).toEqual([1, 2]);
    expect(commits.counters.retained).toMatchObject({ writes: 0, dropped: 1 });
    expect(lines.filter((l) => l.level === ERROR).map((l) => l.msg)).toEqual([
      "journal commit failed: its writes are kept and retried until they commit",
      "journal: a write failed with an error no retry fixes: it was dropped and is lost",
    ]);
    commits.close();
    db.close();
  });

  it("a write-ahead log that cannot grow is reset before a retry: the kept writes commit (a child process under ulimit -f)", async () => {
    const file = join(dir, "wal-limit.db");
    const script = fileURLToPath(new URL("./fixtures/wal-limit/fill-wal.js", import.meta.url));
    // 2048 blocks of 512 bytes (a POSIX shell's unit): no file may pass 1 MiB.
    const { stdout } = await promisify(execFile)("/bin/sh", ["-c", `trap '' XFSZ; ulimit -f 2048 && exec "$@"`, "sh", process.execPath, script, file]);
    const out = JSON.parse(stdout) as { failedAt: number | null; last: number; rows: Array<{ id: number; head: string; length: number }>; lines: string[] };
    expect(out.failedAt).not.toBeNull(); // the log reached the limit: a commit failed
    expect(out.lines).toContain("journal commit failed: its writes are kept and retried until they commit");
    expect(out.lines).toContain("journal caught up: the writes kept after a failed commit have committed");
    // Each row holds the last value written to it: update k wrote digit k % 10 to row k % 3 + 1.
    const lastFor = (id: number) => [0, 1, 2].map((d) => out.last - d).find((k) => (k % 3) + 1 === id)!;
    expect(out.rows).toEqual([1, 2, 3].map((id) => ({ id, head: String(lastFor(id) % 10), length: 200_000 })));
  });

  it("close() commits the writes kept if there is room, and logs those it cannot commit as lost", async () => {
    const { db, lines, commits, sql } = await openCommits("close.db");
    noRoom(db);
    commits.add(sql.insert(1), BIG.length);
    await expect(commits.committed()).rejects.toMatchObject({ code: "SQLITE_FULL" });
    room(db, 3); // room for row 1 (2 overflow pages), not row 2 too
    commits.add(sql.insert(2), BIG.length);
    commits.close();
    expect(sql.rows().map((r) => r.row)).toEqual([1]);
    expect(lines.at(-1)).toMatchObject({ level: ERROR, msg: expect.stringMatching(/closed with writes it could not commit/), writes: 1 });
    expect(commits.counters.retained.writes).toBe(0);
    commits.add(sql.insert(3, "closed"), 6); // ignored
    db.close();
  });
});

function request(key: string, payloadJson: string): NewRequest {
  return {
    idempotencyKey: key,
    requestId: `req-${key}`,
    handler: "h",
    payloadJson,
    fingerprint: `fp-${key}`,
    priority: 0,
    timeoutMs: 60_000,
    deadline: Date.now() + 60_000,
  };
}
