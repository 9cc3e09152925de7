/**
 * Picks the cluster's store from its options: the SQLite journal with `journal`, else
 * memory. The journal's module (and better-sqlite3, an optional dependency) is imported
 * only when asked for, so a cluster without it never loads native code.
 */
import type { Logger } from "pino";
import type { ResolvedOptions } from "../options.js";
import type { KeyTableLimits } from "./key-table.js";
import { MemoryStore } from "./memory.js";
import type { RequestStore } from "./store.js";

type StoreOptions = Pick<ResolvedOptions, "journal" | "journalSync" | "resultTtlMs" | "maxKeptReplies" | "maxPendingBytes">;

/** Creates (not yet opens) the store the options ask for. Throws JournalError when the journal cannot be used. */
export async function createStore(options: StoreOptions, log: Logger): Promise<RequestStore> {
  // Replies kept in memory are bounded by maxPendingBytes as well as by their count.
  const limits: KeyTableLimits = { maxKeys: options.maxKeptReplies, maxBytes: options.maxPendingBytes, ttlMs: options.resultTtlMs };
  if (options.journal === null) return new MemoryStore(limits);
  const { JournalStore } = await import("./journal.js");
  return JournalStore.create(options.journal, { ...limits, sync: options.journalSync }, log);
}
