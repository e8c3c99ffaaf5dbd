import { copyFileSync, existsSync, linkSync, mkdirSync, readdirSync } from "node:fs"
import { dirname, join, relative } from "node:path"
import type { Config } from "../config.ts"
import { fsyncDir, mediaDirFor } from "./backup.files.ts"

/**
 * Uploaded media beside a backup (`<backup>.media/`), for the `local` media driver: the database names the
 * files, so a restore without them would leave every photo and voice note a 404. Completed media files are
 * never rewritten (a new upload gets a new random key), so hard links are a consistent copy at no cost when
 * the backups live on the same filesystem; elsewhere the files are copied. Taken after the database snapshot:
 * every file the snapshot names is there unless it was deleted in between. Uploads not completed (`incoming/`)
 * and temp files are left out. With the s3 driver the bucket is the backup's business (versioning).
 */
const mediaRoot = (config: Config) => config.media.dir || join(config.data.dir, "media")

/** Completed media files under `root`, relative paths. */
function mediaFiles(root: string): string[] {
  if (!existsSync(root)) return []
  return readdirSync(root, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => relative(root, join(e.parentPath, e.name)))
    .filter((path) => !path.startsWith("incoming/") && !path.startsWith(".tmp/"))
}

/** Links (or copies) every file of `files` from `from` to `to`, skipping those already there; returns how many. */
function mirror(from: string, to: string, files: string[]): { count: number; linked: boolean } {
  let linked = true
  let count = 0
  const dirs = new Set<string>()
  for (const file of files) {
    const target = join(to, file)
    if (existsSync(target)) continue
    mkdirSync(dirname(target), { recursive: true })
    dirs.add(dirname(target))
    try {
      linkSync(join(from, file), target)
    } catch {
      linked = false
      copyFileSync(join(from, file), target)
    }
    count++
  }
  for (const dir of dirs) fsyncDir(dir)
  return { count, linked }
}

/** After a backup: the media files beside it; says what happened (for the operator). */
export function saveMediaBeside(config: Config, backupFile: string): string {
  if (config.media.driver !== "local")
    return "media: stored in S3, not part of the backup (use bucket versioning)"
  const files = mediaFiles(mediaRoot(config))
  if (files.length === 0) return "media: no uploaded files"
  const { count, linked } = mirror(mediaRoot(config), mediaDirFor(backupFile), files)
  return `media: ${count} file(s) in ${mediaDirFor(backupFile)} (${linked ? "hard links" : "copies"})`
}

/** After a restore: puts back the media files the backup kept (files already in place are left as they are). */
export function restoreMediaBeside(config: Config, backupFile: string): string {
  const saved = mediaDirFor(backupFile)
  if (!existsSync(saved)) return "media: none beside the backup"
  if (config.media.driver !== "local")
    return `media: the configured driver is s3; copy ${saved} to the bucket`
  const { count } = mirror(saved, mediaRoot(config), mediaFiles(saved))
  return `media: ${count} file(s) restored to ${mediaRoot(config)}`
}
