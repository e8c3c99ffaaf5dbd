import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  writeSync,
} from "node:fs"
import { homedir, tmpdir } from "node:os"
import { dirname, join } from "node:path"

/**
 * Native addons inside the compiled binary (sharp). `bun build --compile` embeds files, but a shared library can
 * only be loaded from a real file, and sharp's addon finds libvips through its RPATH (`$ORIGIN/../../…`). So
 * build.ts embeds the files and this module copies them, on first use, into a cache directory laid out like
 * node_modules/@img, then loads the addon with `process.dlopen`. Outside the binary none of this runs.
 */

/** One embedded file: where Bun put it in the binary (zstd-compressed), where it goes, its size once extracted. */
export type EmbeddedFile = { embedded: string; path: string; size: number }

/** What build.ts generates for an addon: a directory name unique to these exact files, the files, the addon. */
export type EmbeddedAddon = { name: string; files: EmbeddedFile[]; addon: string }

let dataDir: string | undefined

/** Lets the cache fall back to `<data.dir>/cache` when the user cache directory is not writable. */
export function setNativeDataDir(dir: string): void {
  dataDir = dir
}

/** Where extracted native files may go, best first: the user's cache, the data directory, then a private tmp dir. */
export function nativeCacheCandidates(env: Record<string, string | undefined> = process.env): string[] {
  const candidates: string[] = []
  if (env.XDG_CACHE_HOME) candidates.push(join(env.XDG_CACHE_HOME, "urge"))
  const home = env.HOME || safeHomedir()
  if (home) candidates.push(join(home, ".cache", "urge"))
  if (dataDir) candidates.push(join(dataDir, "cache"))
  candidates.push(join(tmpdir(), `urge-${process.getuid?.() ?? "user"}`))
  return candidates
}

function safeHomedir(): string {
  try {
    return homedir()
  } catch {
    return ""
  }
}

/**
 * Extracts the files (once; later starts reuse them) and loads the addon. Throws with every directory tried
 * and why, when none works, so the caller can log why images are unavailable.
 */
export function loadEmbeddedAddon(spec: EmbeddedAddon): unknown {
  const errors: string[] = []
  for (const base of nativeCacheCandidates()) {
    try {
      const root = extract(spec, base)
      // Loading can fail in one place and work in the next (a directory on a noexec mount): try them all.
      const module = { exports: {} as unknown }
      process.dlopen(module, join(root, spec.addon))
      return module.exports
    } catch (error) {
      errors.push(`${base}: ${(error as Error).message}`)
    }
  }
  throw new Error(`cannot extract and load the native files of ${spec.name}: ${errors.join("; ")}`)
}

/** Copies every file under `<base>/<spec.name>/` unless already there; returns that directory. */
function extract(spec: EmbeddedAddon, base: string): string {
  mkdirSync(base, { recursive: true, mode: 0o700 })
  assertPrivate(base)
  const root = join(base, spec.name)
  for (const file of spec.files) {
    const target = join(root, file.path)
    if (sizeOf(target) === file.size) continue
    mkdirSync(dirname(target), { recursive: true, mode: 0o700 })
    // Concurrent first starts each write their own temp file and rename it into place (atomic): the addon
    // never sees a half-written library. fsync first, so a crash cannot leave a truncated file under the final name.
    const temp = `${target}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`
    const data = Bun.zstdDecompressSync(readFileSync(file.embedded))
    if (data.byteLength !== file.size) throw new Error(`${file.path}: embedded copy is damaged`)
    const fd = openSync(temp, "wx", 0o500)
    try {
      writeSync(fd, data)
      fsyncSync(fd)
    } finally {
      closeSync(fd)
    }
    renameSync(temp, target)
  }
  return root
}

/** Loading code from a directory others can write to would let them run code as us. */
function assertPrivate(dir: string): void {
  const stat = statSync(dir)
  const uid = process.getuid?.()
  if (uid !== undefined && stat.uid !== uid) throw new Error("owned by another user")
  if (stat.mode & 0o022) throw new Error("writable by group or others")
}

function sizeOf(path: string): number {
  try {
    return statSync(path).size
  } catch {
    return -1
  }
}
