import { Database } from "bun:sqlite"
import { chmodSync, chownSync, existsSync, renameSync, rmSync, statSync } from "node:fs"
import { dirname } from "node:path"
import { AppError } from "../errors.ts"
import { draftName, fsyncDir, keepAside, publishNew, stageCopy } from "./backup.files.ts"
import { assertRestorable, type SchemaVersion, schemaVersion } from "./backup.schema.ts"
import { searchDatabasePath } from "../messages/search.indexer.ts"

/**
 * SQLite backups are plain SQLite files made with `VACUUM INTO`: one read transaction on the live database, so
 * the copy is a consistent snapshot including what is still in the WAL, taken while the server keeps
 * writing (WAL readers do not block writers). The copy is compacted and in rollback-journal mode: a single
 * self-contained file that the sqlite3 shell opens too. bun:sqlite has no binding of SQLite's backup API
 * (and `serialize()` would hold the whole database in memory).
 */
export function createSqliteBackup(databasePath: string, target: string, busyTimeoutMs: number) {
  assertBackupable(databasePath)
  // Never created here, never written: VACUUM INTO only reads the source.
  const db = new Database(databasePath, { readwrite: true, create: false })
  const draft = draftName(target)
  try {
    db.exec(`PRAGMA busy_timeout = ${busyTimeoutMs}`)
    db.query("VACUUM INTO ?").run(draft)
  } catch (error) {
    rmSync(draft, { force: true })
    throw error
  } finally {
    db.close(false)
  }
  publishNew(draft, target)
}

export function assertBackupable(databasePath: string) {
  if (databasePath === ":memory:")
    throw new AppError(422, "backup.unsupported", "an in-memory database cannot be backed up")
  if (!existsSync(databasePath))
    throw new AppError(404, "backup.no_database", `no database at ${databasePath} (nothing to back up yet)`)
}

/** Integrity of a SQLite backup (every page and index checked) and the migrations it carries. */
export function verifySqliteBackup(file: string): SchemaVersion {
  let db: Database
  try {
    db = new Database(file, { readonly: true })
  } catch (error) {
    throw invalid(file, (error as Error).message)
  }
  try {
    let problems: string[]
    try {
      problems = (db.query("PRAGMA integrity_check").all() as { integrity_check: string }[])
        .map((row) => row.integrity_check)
        .filter((line) => line !== "ok")
    } catch (error) {
      throw invalid(file, (error as Error).message)
    }
    if (problems.length) throw invalid(file, problems.slice(0, 3).join("; "))
    const table = db
      .query("select 1 from sqlite_master where type = 'table' and name = 'kysely_migration'")
      .get()
    if (!table) throw invalid(file, "no kysely_migration table: not a URGE database")
    const rows = db.query("select name from kysely_migration order by name").all() as { name: string }[]
    return schemaVersion(rows.map((r) => r.name))
  } finally {
    db.close(false)
  }
}

const invalid = (file: string, why: string) =>
  new AppError(422, "backup.invalid", `${file} failed verification: ${why}`)

/**
 * Puts a verified backup in place of the configured database. Refused while any other connection has the
 * database open: a running `urge serve` keeps a connection (and so a shared lock) for its whole life, so an
 * exclusive lock is the honest test that no server uses the file. The lock is held from before the copy is
 * checked through the swap, so a server starting meanwhile waits (and then fails with "database is locked"
 * instead of writing into the old file). Returns where the previous database was kept, if there was one.
 */
export function restoreSqliteBackup(
  file: string,
  databasePath: string,
  now = new Date(),
): { version: SchemaVersion; previous: string | null } {
  if (databasePath === ":memory:")
    throw new AppError(422, "backup.unsupported", "cannot restore into an in-memory database")
  // Locked first: a refusal comes at once, and no server can start while the copy is checked.
  const lock = existsSync(databasePath) ? lockExclusively(databasePath) : null
  let staged: string | null = null
  try {
    staged = stageCopy(file, databasePath)
    // What gets installed is what was checked: the staged copy, not the file it was copied from.
    const version = verifyStaged(file, staged)
    assertRestorable(file, version)
    let previous: string | null = null
    if (lock) {
      // The server may run as another user than the one restoring (sudo): keep the file's owner and mode.
      const { uid, gid, mode } = statSync(databasePath)
      chmodSync(staged, mode & 0o777)
      try {
        chownSync(staged, uid, gid)
      } catch {}
      // Fold the WAL into the file and drop it, so the file kept aside is complete on its own and no stale
      // -wal can be replayed onto the restored database.
      lock.query("PRAGMA journal_mode = DELETE").get()
      previous = keepAside(databasePath, now)
      for (const suffix of ["-wal", "-shm", "-journal"]) rmSync(databasePath + suffix, { force: true })
    }
    // The search index is derived from the messages it replaced: the server rebuilds it from the restored ones.
    const search = searchDatabasePath(databasePath)
    for (const suffix of ["", "-wal", "-shm"]) rmSync(search + suffix, { force: true })
    renameOver(staged, databasePath)
    return { version, previous }
  } finally {
    lock?.close(false)
    if (staged) rmSync(staged, { force: true })
  }
}

function verifyStaged(file: string, staged: string): SchemaVersion {
  try {
    return verifySqliteBackup(staged)
  } catch (error) {
    if (error instanceof AppError)
      throw new AppError(error.status, error.code, error.detail.replace(staged, file))
    throw error
  }
}

/** An exclusive lock on the live database, or a refusal naming the likely holder. */
function lockExclusively(databasePath: string): Database {
  const db = new Database(databasePath, { readwrite: true, create: false })
  try {
    // A server holds its connection for its whole life; a CLI command (urge users …) only for a moment.
    db.exec("PRAGMA busy_timeout = 1000")
    db.query("PRAGMA locking_mode = EXCLUSIVE").get()
    // The first read takes the lock (and recovers a WAL left by a killed process).
    db.query("select count(*) from sqlite_master").get()
    return db
  } catch (error) {
    db.close(false)
    if ((error as { code?: string }).code === "SQLITE_BUSY")
      throw new AppError(
        409,
        "backup.database_in_use",
        `${databasePath} is in use (a running urge serve?): stop every server using it, then restore`,
      )
    throw error
  }
}

function renameOver(source: string, target: string) {
  renameSync(source, target)
  fsyncDir(dirname(target))
}
