/**
 * Opening the journal's SQLite file: better-sqlite3 loaded only now (an optional
 * dependency), WAL mode, and a schema check that refuses a file crew did not write or
 * wrote with another schema version. A file that is not a database or fails SQLite's
 * quick_check is refused too: it is never replaced, so nothing a previous primary
 * accepted is silently thrown away.
 *
 * Durability (https://www.sqlite.org/pragma.html#pragma_synchronous, and
 * https://www.sqlite.org/wal.html): in WAL mode, synchronous=NORMAL syncs only at WAL
 * checkpoints, so a commit survives the death of the process (the WAL is in the OS's
 * page cache) but an OS crash or power loss may roll back the last commits;
 * synchronous=FULL syncs the WAL on every commit and loses nothing committed.
 */
import type BetterSqlite3 from "better-sqlite3";
import { existsSync, statSync } from "node:fs";
import { JournalError } from "../errors.js";

export type Database = BetterSqlite3.Database;

/** `crew` in ASCII: PRAGMA application_id of every journal (https://www.sqlite.org/fileformat.html#application_id). */
export const APPLICATION_ID = 0x63726577;
/**
 * The schema this crew writes and reads (PRAGMA user_version). Version 2 stores rows in
 * the order they were accepted (rowid) with no index on the key, which crew holds in
 * memory: version 1's table, ordered by the client's random keys, dirtied one 4 KiB page
 * per request in every commit (measured: 3.7 ms a commit of 100 echoes against 0.7 ms
 * appended in order).
 */
export const SCHEMA_VERSION = 2;

const SCHEMA = `
CREATE TABLE requests (
  row         INTEGER PRIMARY KEY,
  key         TEXT NOT NULL,
  request_id  TEXT NOT NULL,
  handler     TEXT NOT NULL,
  payload     TEXT,
  fingerprint TEXT NOT NULL,
  priority    INTEGER NOT NULL,
  timeout_ms  INTEGER NOT NULL,
  deadline    INTEGER NOT NULL,
  accepted_at INTEGER NOT NULL,
  attempts    INTEGER NOT NULL DEFAULT 0,
  checkpoint  TEXT,
  reply       TEXT,
  expires_at  INTEGER
);
CREATE INDEX requests_expiry ON requests (expires_at) WHERE expires_at IS NOT NULL;
`;

/**
 * Opens (creating when absent) the journal at `file`. Throws JournalError naming the
 * file and the reason: better-sqlite3 missing, not a database, corrupt, another
 * application's database, or another schema version.
 */
export async function openJournalFile(file: string, sync: "normal" | "full"): Promise<Database> {
  const Sqlite = await loadDriver();
  const fresh = !existsSync(file) || statSync(file).size === 0;
  let db: Database;
  try {
    db = new Sqlite(file, { fileMustExist: false, timeout: 0 });
  } catch (err) {
    throw new JournalError(`journal ${file} cannot be opened: ${(err as Error).message}`, { cause: err });
  }
  try {
    // One primary per journal: a second one would queue the first's open requests again
    // and run them twice. EXCLUSIVE holds SQLite's lock on the file from the first read
    // until close (the OS drops it when the process dies, kill -9 included), so a second
    // opener is refused; in WAL mode it also keeps the WAL index in memory, not in a -shm
    // file (https://www.sqlite.org/pragma.html#pragma_locking_mode, https://www.sqlite.org/wal.html#noshm).
    db.pragma("locking_mode = EXCLUSIVE");
    if (fresh) create(db);
    else if (check(db, file) === 1) migrateFromV1(db);
    db.pragma("journal_mode = WAL");
    db.pragma(`synchronous = ${sync === "full" ? "FULL" : "NORMAL"}`);
    return db;
  } catch (err) {
    db.close();
    if (err instanceof JournalError) throw err;
    if ((err as { code?: string }).code === "SQLITE_BUSY") throw new JournalError(`journal ${file} is in use by another primary: give each primary its own journal`, { cause: err });
    throw new JournalError(`journal ${file} is not a readable crew journal (${(err as Error).message}): it was left as it is`, { cause: err });
  }
}

async function loadDriver(): Promise<typeof BetterSqlite3> {
  try {
    return (await import("better-sqlite3")).default;
  } catch (err) {
    throw new JournalError(
      `--journal needs the optional dependency better-sqlite3 (12.x), which is not installed or did not build: npm install better-sqlite3@12 (${(err as Error).message})`,
      { cause: err },
    );
  }
}

function create(db: Database): void {
  db.exec(SCHEMA);
  db.pragma(`application_id = ${APPLICATION_ID}`);
  db.pragma(`user_version = ${SCHEMA_VERSION}`);
}

/** Version 1's rows (keyed by `key`) copied into version 2's table, in one transaction, oldest first. */
function migrateFromV1(db: Database): void {
  const columns = "key, request_id, handler, payload, fingerprint, priority, timeout_ms, deadline, accepted_at, attempts, checkpoint, reply, expires_at";
  db.transaction(() => {
    db.exec("DROP INDEX IF EXISTS requests_expiry; ALTER TABLE requests RENAME TO requests_v1;");
    db.exec(SCHEMA);
    db.exec(`INSERT INTO requests (${columns}) SELECT ${columns} FROM requests_v1 ORDER BY accepted_at; DROP TABLE requests_v1;`);
    db.pragma(`user_version = ${SCHEMA_VERSION}`);
  })();
}

/** Refuses what this crew cannot read; returns the file's schema version (this one, or 1, which it migrates). */
function check(db: Database, file: string): number {
  const quick = db.pragma("quick_check", { simple: true });
  if (quick !== "ok") throw new JournalError(`journal ${file} is corrupt (quick_check: ${String(quick)}): it was left as it is`);
  const app = db.pragma("application_id", { simple: true }) as number;
  const version = db.pragma("user_version", { simple: true }) as number;
  if (app !== APPLICATION_ID) {
    throw new JournalError(`${file} is an SQLite database but not a crew journal (application_id ${app}): it was left as it is`);
  }
  if (version !== SCHEMA_VERSION && version !== 1) {
    const which = version > SCHEMA_VERSION ? "a newer" : "an older";
    throw new JournalError(`journal ${file} has schema version ${version} (${which} crew wrote it); this crew reads version ${SCHEMA_VERSION}: it was left as it is`);
  }
  return version;
}
