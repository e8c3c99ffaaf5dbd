import { Database as SqliteDatabase } from "bun:sqlite"
import { mkdirSync } from "node:fs"
import { dirname, join } from "node:path"
import { Kysely, PostgresDialect, sql } from "kysely"
import { BunSqliteDialect } from "kysely-bun-sqlite"
import pg from "pg"
import type { Config } from "../config.ts"
import type { Database } from "./schema.ts"
import { createWal, type Wal } from "./wal.ts"

export type Dialect = "sqlite" | "postgres"

/** An open database: the Kysely instance every repository takes, and what is needed to close it. */
export type DatabaseHandle = {
  db: Kysely<Database>
  dialect: Dialect
  /** Where the data lives, without credentials (for logs and `urge migrate status`). */
  location: string
  /** The raw bun:sqlite handle (SQLite only): backups and the rare hot path that needs it. */
  sqlite?: SqliteDatabase
  /** SQLite in a file: fsyncs and checkpoints off the event loop (see wal.ts). */
  wal?: Wal
  /** The pg pool under Kysely (Postgres only): the send batch's named prepared statements. */
  pool?: pg.Pool
  close(): Promise<void>
}

// int8 (bigint) holds our millisecond timestamps and sequence numbers; all fit in a JS number.
pg.types.setTypeParser(20, (value) => Number(value))

/** SQLite: how much of a database file is read through a memory map (64-bit address space; 1M messages: 0.7 GiB). */
export const mmapBytes = 2 ** 31

/** Where SQLite lives for this config, or null for Postgres. */
export function sqlitePath(config: Config): string | null {
  const url = config.database.url
  if (url === "") return join(config.data.dir, "urge.db")
  if (url.startsWith("sqlite:") || url.startsWith("file:")) return url.replace(/^(sqlite|file):(\/\/)?/, "")
  return null
}

/** Opens SQLite (WAL, foreign keys, busy timeout, chosen durability) or a Postgres pool, per the config. */
export function openDatabase(config: Config): DatabaseHandle {
  const path = sqlitePath(config)
  if (path !== null) {
    if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true })
    const sqlite = new SqliteDatabase(path, { create: true, strict: true })
    // busy_timeout first: switching a new file to WAL needs a lock another process may hold.
    sqlite.exec(`PRAGMA busy_timeout = ${config.database.busy_timeout}`)
    sqlite.exec("PRAGMA journal_mode = WAL")
    sqlite.exec("PRAGMA foreign_keys = ON")
    // 64 MiB of page cache instead of SQLite's 2 MiB: one connection serves every request, and a search or a
    // conversation list on a million messages touches more pages than 2 MiB hold (each miss is a read(2)).
    sqlite.exec("PRAGMA cache_size = -65536")
    // Pages missing from that cache are read through a memory map of the file rather than read(2) and a copy
    // each (SQLite maps read-only; writes still go through write(2)): a history page of 50 touches ~50 table
    // pages, and mapped it costs 25 % less CPU on 1M messages (324–406 against 426–539 µs in-process).
    sqlite.exec(`PRAGMA mmap_size = ${mmapBytes}`)
    // FULL: every commit is fsynced (survives power loss); NORMAL: WAL survives a crash of the process.
    sqlite.exec(`PRAGMA synchronous = ${config.database.durability === "full" ? "FULL" : "NORMAL"}`)
    const db = new Kysely<Database>({ dialect: new BunSqliteDialect({ database: sqlite }) })
    const wal = path === ":memory:" ? undefined : createWal(sqlite, path)
    return {
      db,
      dialect: "sqlite",
      location: path,
      sqlite,
      wal,
      close: async () => {
        await wal?.close()
        await db.destroy()
        // kysely-bun-sqlite never finalizes its prepared statements, and close(false) (sqlite3_close_v2)
        // waits for them: without a collection first, the file stays open and locked (and its WAL not
        // checkpointed) until some later GC, which a restore or a restart in the same process would meet.
        Bun.gc(true)
        sqlite.close(false)
      },
    }
  }
  const pool = new pg.Pool({ connectionString: config.database.url, max: config.database.pool_size })
  // An idle client losing its connection must not crash the process; the next query reconnects.
  pool.on("error", () => {})
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) })
  const safe = new URL(config.database.url)
  safe.password = ""
  return { db, dialect: "postgres", location: safe.toString(), pool, close: () => db.destroy() }
}

/** Cheap round trip proving the database answers (GET /health). */
export async function pingDatabase(db: Kysely<Database>): Promise<void> {
  await sql`select 1`.execute(db)
}
