import { statSync } from "node:fs"
import { dirname, join, resolve } from "node:path"
import type { Config } from "../config.ts"
import { sqlitePath } from "../db/database.ts"
import { AppError } from "../errors.ts"
import {
  type BackupKind,
  backupDir,
  defaultBackupName,
  detectKind,
  ensureBackupDir,
  pruneBackups,
  restoreSecretBeside,
  saveSecretBeside,
} from "./backup.files.ts"
import {
  createPostgresBackup,
  inspectPostgres,
  restorePostgresBackup,
  safeUrl,
  verifyPostgresBackup,
} from "./backup.postgres.ts"
import { restoreMediaBeside, saveMediaBeside } from "./backup.media.ts"
import { assertRestorable, type SchemaVersion } from "./backup.schema.ts"
import {
  assertBackupable,
  createSqliteBackup,
  restoreSqliteBackup,
  verifySqliteBackup,
} from "./backup.sqlite.ts"

/** `urge backup create|verify|restore`: what the CLI calls. The database is opened here, never through deps. */

const dialectOf = (config: Config): BackupKind => (sqlitePath(config) === null ? "postgres" : "sqlite")

export type CreatedBackup = {
  file: string
  kind: BackupKind
  bytes: number
  /** One line on the JWT secret (copied beside the backup, or why not). */
  secret: string
  /** One line on the uploaded media (kept beside the backup, or why not). */
  media: string
  /** Older backups deleted by backup.keep. */
  pruned: string[]
}

/** A consistent snapshot of the configured database, taken while it serves; `out` defaults to the backups dir. */
export async function createBackup(
  config: Config,
  options: { out?: string; now?: Date; prune?: boolean } = {},
) {
  const kind = dialectOf(config)
  const dir = backupDir(config)
  const file = options.out ? resolve(options.out) : join(dir, defaultBackupName(kind, options.now))
  if (kind === "sqlite") assertBackupable(sqlitePath(config)!)
  ensureBackupDir(dirname(file))
  if (kind === "sqlite") createSqliteBackup(sqlitePath(config)!, file, config.database.busy_timeout)
  else await createPostgresBackup(config.database.url, file)
  const secret = saveSecretBeside(config, file)
  const media = saveMediaBeside(config, file)
  return {
    file,
    kind,
    bytes: statSync(file).size,
    secret,
    media,
    pruned: options.prune === false ? [] : pruneBackups(dir, config.backup.keep),
  } satisfies CreatedBackup
}

export type VerifiedBackup = { file: string; kind: BackupKind; bytes: number; version: SchemaVersion }

/** Checks any backup file (SQLite or pg_dump archive, told by its content) without touching a database. */
export async function verifyBackup(file: string): Promise<VerifiedBackup> {
  const path = resolve(file)
  const kind = detectKind(path)
  const version = kind === "sqlite" ? verifySqliteBackup(path) : await verifyPostgresBackup(path)
  return { file: path, kind, bytes: statSync(path).size, version }
}

export type RestoredBackup = {
  file: string
  kind: BackupKind
  /** The database restored into (path, or URL without password). */
  target: string
  version: SchemaVersion
  /** Where the replaced database was kept (a file aside, or a fresh dump), if there was one. */
  previous: string | null
  secret: string
  media: string
}

/**
 * Replaces the configured database with a backup, refusing while a server uses it. SQLite: the file is
 * swapped under an exclusive lock, the previous one kept aside. Postgres: the previous contents are dumped
 * to the backups dir first, then replaced in one transaction.
 */
export async function restoreBackup(config: Config, file: string, now = new Date()): Promise<RestoredBackup> {
  const path = resolve(file)
  const kind = detectKind(path)
  const dialect = dialectOf(config)
  if (kind !== dialect)
    throw new AppError(
      422,
      "backup.wrong_dialect",
      `${path} is a ${kind === "sqlite" ? "SQLite" : "Postgres"} backup but the configured database is ${dialect === "sqlite" ? "SQLite" : "Postgres"}: restore it into a database of its kind`,
    )
  let target: string
  let version: SchemaVersion
  let previous: string | null = null
  if (kind === "sqlite") {
    target = sqlitePath(config)!
    ;({ version, previous } = restoreSqliteBackup(path, target, now))
  } else {
    target = safeUrl(config.database.url)
    const { otherSessions, tables } = await inspectPostgres(config.database.url)
    if (otherSessions > 0)
      throw new AppError(
        409,
        "backup.database_in_use",
        `${target} has ${otherSessions} other connection(s) (a running urge serve?): stop every server using it, then restore`,
      )
    version = await verifyPostgresBackup(path)
    assertRestorable(path, version)
    // Not pruned: backup.keep could otherwise delete the very backup being restored.
    if (tables > 0) previous = (await createBackup(config, { now, prune: false })).file
    await restorePostgresBackup(config.database.url, path)
  }
  const secret = restoreSecretBeside(config, path, now)
  return { file: path, kind, target, version, previous, secret, media: restoreMediaBeside(config, path) }
}
