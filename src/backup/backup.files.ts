import {
  chmodSync,
  closeSync,
  copyFileSync,
  existsSync,
  fsyncSync,
  linkSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from "node:fs"
import { basename, dirname, join, resolve } from "node:path"
import type { Config } from "../config.ts"
import { AppError } from "../errors.ts"

/** What a backup file holds, told by its first bytes (not its name): a SQLite database or a pg_dump archive. */
export type BackupKind = "sqlite" | "postgres"

/** The directory `urge backup create` writes to and `urge backup list` reads. */
export const backupDir = (config: Config) => resolve(config.data.dir, config.backup.dir || "backups")

/** `urge-2026-11-24T03-22-26.512Z.db`: UTC, sortable by name, no colons (scp, Windows shares). */
export function defaultBackupName(kind: BackupKind, now = new Date()): string {
  const stamp = now.toISOString().replace(/:/g, "-")
  return `urge-${stamp}.${kind === "sqlite" ? "db" : "pgdump"}`
}

/** Names `create` gives; only these are listed and pruned (nothing else in the directory is touched). */
const backupNamePattern = /^urge-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d\.\d{3}Z\.(db|pgdump)$/

/** Beside each backup: the generated JWT secret it was taken with (see secretFileFor). */
export const secretSuffix = ".jwt-secret"
export const secretFileFor = (backupFile: string) => backupFile + secretSuffix
/** Beside each backup: the local media files it names (see backup.media.ts). */
export const mediaDirFor = (backupFile: string) => `${backupFile}.media`

/** The instance's generated JWT secret (used when auth.jwt_secret is not set). */
export const jwtSecretFile = (config: Config) => join(config.data.dir, "jwt-secret")

/** Reads the first bytes: "SQLite format 3\0" or pg_dump's custom-format magic "PGDMP". */
export function detectKind(file: string): BackupKind {
  if (!existsSync(file)) throw new AppError(404, "backup.not_found", `no such file: ${file}`)
  const head = Buffer.alloc(16)
  const fd = openSync(file, "r")
  try {
    readSync(fd, head, 0, 16, 0)
  } finally {
    closeSync(fd)
  }
  if (head.toString("latin1") === "SQLite format 3\0") return "sqlite"
  if (head.subarray(0, 5).toString("latin1") === "PGDMP") return "postgres"
  throw new AppError(
    422,
    "backup.invalid",
    `${file} is not a URGE backup: neither a SQLite database nor a pg_dump custom-format archive`,
  )
}

/** A private name beside `target` (same directory, so the final rename is atomic). */
export const draftName = (target: string) =>
  join(dirname(target), `.${basename(target)}.${process.pid}.${Date.now()}.tmp`)

export function fsyncFile(file: string) {
  const fd = openSync(file, "r+")
  try {
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
}

/** Makes a rename or unlink in `dir` durable (the directory entry itself is fsynced). */
export function fsyncDir(dir: string) {
  const fd = openSync(dir, "r")
  try {
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
}

/**
 * Moves a complete, fsynced draft to `target`, refusing to replace an existing file (link fails with EEXIST,
 * where rename would silently overwrite an older backup).
 */
export function publishNew(draft: string, target: string) {
  // Private like the database itself: a backup holds password hashes and every message.
  chmodSync(draft, 0o600)
  fsyncFile(draft)
  try {
    linkSync(draft, target)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST")
      throw new AppError(409, "backup.exists", `${target} already exists; choose another --out`)
    throw error
  } finally {
    rmSync(draft, { force: true })
  }
  fsyncDir(dirname(target))
}

/** Writes a small private file (mode 0600) whole: draft, fsync, rename. */
export function writePrivateFile(target: string, content: string) {
  const draft = draftName(target)
  writeFileSync(draft, content, { mode: 0o600 })
  fsyncFile(draft)
  renameSync(draft, target)
  fsyncDir(dirname(target))
}

/** Copies `source` to a draft beside `target` (fsynced) and returns the draft's path. */
export function stageCopy(source: string, target: string): string {
  const draft = draftName(target)
  copyFileSync(source, draft)
  fsyncFile(draft)
  return draft
}

/** Creates the backups directory, private to the user: backups hold password hashes and every message. */
export function ensureBackupDir(dir: string) {
  mkdirSync(dir, { recursive: true, mode: 0o700 })
}

/** `<name>.before-restore-<UTC time>`: where a restore keeps what it replaced. */
export const asideName = (file: string, now = new Date()) =>
  `${file}.before-restore-${now.toISOString().replace(/:/g, "-")}`

/** Keeps the previous file under its aside name (a hard link: the original path is never missing). */
export function keepAside(file: string, now = new Date()): string {
  const aside = asideName(file, now)
  linkSync(file, aside)
  return aside
}

export type ListedBackup = {
  file: string
  kind: BackupKind
  bytes: number
  createdAt: Date
  hasSecret: boolean
}

/** The backups `create` wrote to the backups directory, newest first. */
export function listBackups(dir: string): ListedBackup[] {
  if (!existsSync(dir)) return []
  return readdirSync(dir)
    .filter((name) => backupNamePattern.test(name))
    .sort()
    .reverse()
    .map((name) => {
      const file = join(dir, name)
      const stamp = name.slice(5, name.lastIndexOf("."))
      return {
        file,
        kind: name.endsWith(".db") ? ("sqlite" as const) : ("postgres" as const),
        bytes: statSync(file).size,
        createdAt: new Date(stamp.replace(/T(\d\d)-(\d\d)-(\d\d)/, "T$1:$2:$3")),
        hasSecret: existsSync(secretFileFor(file)),
      }
    })
}

/** Deletes all but the newest `keep` backups of the directory (and their secrets and media); 0 keeps everything. */
export function pruneBackups(dir: string, keep: number): string[] {
  if (keep <= 0) return []
  const removed = listBackups(dir)
    .slice(keep)
    .map(({ file }) => {
      unlinkSync(file)
      rmSync(secretFileFor(file), { force: true })
      rmSync(mediaDirFor(file), { recursive: true, force: true })
      return file
    })
  if (removed.length) fsyncDir(dir)
  return removed
}

/** Copies the generated JWT secret beside a new backup; says what happened (for the operator). */
export function saveSecretBeside(config: Config, backupFile: string): string {
  if (config.auth.jwt_secret) return "jwt secret: set in the configuration (auth.jwt_secret); not copied"
  const source = jwtSecretFile(config)
  if (!existsSync(source)) return "jwt secret: none generated yet; nothing to copy"
  writePrivateFile(secretFileFor(backupFile), readFileSync(source, "utf8"))
  return `jwt secret: ${secretFileFor(backupFile)}`
}

/**
 * After a restore: installs the JWT secret the backup was taken with, so its sessions and refresh tokens stay
 * valid (refresh tokens are an HMAC keyed with it). The one it replaces is kept aside.
 */
export function restoreSecretBeside(config: Config, backupFile: string, now = new Date()): string {
  const saved = secretFileFor(backupFile)
  const current = jwtSecretFile(config)
  if (config.auth.jwt_secret)
    return "jwt secret: auth.jwt_secret is set in the configuration; it stays (use the one the backup was taken with)"
  if (!existsSync(saved))
    return existsSync(current)
      ? `jwt secret: none beside the backup; ${current} stays (sessions signed with another secret must sign in again)`
      : "jwt secret: none beside the backup; a new one is generated at start (every user signs in again)"
  const secret = readFileSync(saved, "utf8")
  if (existsSync(current)) {
    if (readFileSync(current, "utf8").trim() === secret.trim()) return `jwt secret: ${current} unchanged`
    const aside = keepAside(current, now)
    writePrivateFile(current, secret)
    return `jwt secret: restored to ${current} (previous kept at ${aside})`
  }
  mkdirSync(dirname(current), { recursive: true })
  writePrivateFile(current, secret)
  return `jwt secret: restored to ${current}`
}

/** 1536 → "1.5 KiB". */
export function formatBytes(bytes: number): string {
  const units = ["bytes", "KiB", "MiB", "GiB", "TiB"]
  let value = bytes
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024
    unit++
  }
  return unit === 0 ? `${bytes} bytes` : `${value.toFixed(1)} ${units[unit]}`
}
