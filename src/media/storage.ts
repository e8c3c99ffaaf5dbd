import { mkdirSync } from "node:fs"
import { mkdir, open, readdir, rename, rm, stat } from "node:fs/promises"
import { dirname, join } from "node:path"
import { type Config, ConfigError } from "../config.ts"
import { AppError } from "../errors.ts"

/**
 * Where media bytes live, behind one small interface: `local` (files under media.dir, the default) or `s3`
 * (any S3-compatible bucket, through Bun's built-in S3 client). Keys are checked by the media service
 * (`isStorageKey`) before they get here: no key can leave the root.
 */
export interface MediaStorage {
  readonly driver: "local" | "s3"
  /** Stores `data` under `key`, durably, replacing what was there. */
  write(key: string, data: Uint8Array, type: string): Promise<void>
  /** Stores a request body under `key`; past `limit` bytes it stops and throws 413 (nothing is kept). */
  writeStream(key: string, body: ReadableStream<Uint8Array>, limit: number): Promise<number>
  /** The object's size, or null when there is none. */
  size(key: string): Promise<number | null>
  /** Bytes `[start, end)` of the object (clamped to its size). */
  read(key: string, start?: number, end?: number): Promise<Uint8Array>
  /** Moves an object to a new key (replacing), giving it its final content type. */
  move(from: string, to: string, type: string): Promise<void>
  /** Removes an object; a missing one is no error. */
  delete(key: string): Promise<void>
  /** s3: a presigned PUT URL for the app's raw upload; local: null (the server signs its own URL). */
  presignPut(key: string, expiresIn: number): string | null
  /** s3: a presigned GET URL the file URL redirects to; local: null (the server sends the file itself). */
  presignGet(key: string, expiresIn: number): string | null
  /** local: the file on disk, for serving with ranges; s3: null. */
  localFile(key: string): ReturnType<typeof Bun.file> | null
  /**
   * Removes uploads never completed (under `incoming/`) and temp files of interrupted writes, last written
   * before `before` (ms). local only; with s3 a bucket lifecycle rule on `incoming/` does it. Returns the count.
   */
  sweep(before: number): Promise<number>
}

/** The storage the config asks for. */
export function createMediaStorage(config: Config): MediaStorage {
  const media = config.media
  if (media.driver === "s3") {
    for (const key of ["s3_bucket", "s3_access_key_id", "s3_secret_access_key"] as const)
      if (!media[key]) throw new ConfigError(`config: media.driver = "s3" needs media.${key}`)
    return s3Storage(
      new Bun.S3Client({
        bucket: media.s3_bucket,
        region: media.s3_region,
        endpoint: media.s3_endpoint || `https://s3.${media.s3_region}.amazonaws.com`,
        accessKeyId: media.s3_access_key_id,
        secretAccessKey: media.s3_secret_access_key,
      }),
    )
  }
  return localMediaStorage(media.dir || join(config.data.dir, "media"))
}

export const tooLarge = (limit: number) =>
  new AppError(413, "media.too_large", `The file is larger than the limit of ${formatSize(limit)}.`)

export const formatSize = (bytes: number) =>
  bytes >= 1024 ** 2 && bytes % 1024 ** 2 === 0 ? `${bytes / 1024 ** 2} MB` : `${bytes} bytes`

/** Files under `root`: each written to a temp name, fsynced, renamed into place, and the directory fsynced. */
export function localMediaStorage(root: string): MediaStorage {
  const temps = join(root, ".tmp")
  mkdirSync(temps, { recursive: true })
  const pathOf = (key: string) => join(root, key)
  const tempName = () => join(temps, `${process.pid}-${crypto.randomUUID()}`)

  /** Renames a complete temp file into place; the directory fsync makes the rename itself survive a crash. */
  async function commit(temp: string, key: string) {
    const target = pathOf(key)
    await mkdir(dirname(target), { recursive: true })
    await rename(temp, target)
    await syncDir(dirname(target))
  }

  return {
    driver: "local",
    async write(key, data) {
      const temp = tempName()
      const file = await open(temp, "wx", 0o600)
      try {
        await file.writeFile(data)
        await file.sync()
      } finally {
        await file.close()
      }
      await commit(temp, key)
    },
    async writeStream(key, body, limit) {
      const temp = tempName()
      const file = await open(temp, "wx", 0o600)
      let written = 0
      try {
        for await (const chunk of body) {
          written += chunk.byteLength
          if (written > limit) throw tooLarge(limit)
          await file.write(chunk)
        }
        await file.sync()
      } catch (error) {
        await file.close()
        await rm(temp, { force: true })
        throw error
      }
      await file.close()
      await commit(temp, key)
      return written
    },
    async size(key) {
      try {
        const info = await stat(pathOf(key))
        return info.isFile() ? info.size : null
      } catch {
        return null
      }
    },
    async read(key, start = 0, end) {
      return Bun.file(pathOf(key)).slice(start, end).bytes()
    },
    async move(from, to) {
      await commit(pathOf(from), to)
    },
    async delete(key) {
      await rm(pathOf(key), { force: true })
    },
    presignPut: () => null,
    presignGet: () => null,
    localFile: (key) => Bun.file(pathOf(key)),
    async sweep(before) {
      let removed = 0
      for (const dir of [join(root, "incoming"), temps]) {
        const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => [])
        for (const entry of entries) {
          if (!entry.isFile()) continue
          const path = join(entry.parentPath, entry.name)
          const info = await stat(path).catch(() => null)
          if (info && info.mtimeMs < before) {
            await rm(path, { force: true })
            removed++
          }
        }
      }
      return removed
    },
  }
}

async function syncDir(dir: string) {
  const handle = await open(dir, "r")
  try {
    await handle.sync()
  } finally {
    await handle.close()
  }
}

/** An S3-compatible bucket: uploads go straight to it (presigned PUT); file URLs redirect to presigned GETs. */
export function s3Storage(client: Bun.S3Client): MediaStorage {
  return {
    driver: "s3",
    async write(key, data, type) {
      await client.write(key, data, { type })
    },
    async writeStream(key, body, limit) {
      // Not used by the routes (the app uploads to the bucket directly); kept whole for the interface.
      const chunks: Uint8Array[] = []
      let written = 0
      for await (const chunk of body) {
        written += chunk.byteLength
        if (written > limit) throw tooLarge(limit)
        chunks.push(chunk)
      }
      await client.write(key, Buffer.concat(chunks))
      return written
    },
    async size(key) {
      try {
        return (await client.stat(key)).size
      } catch (error) {
        if ((error as { code?: string }).code === "NoSuchKey" || /not ?found|404/i.test(String(error)))
          return null
        throw error
      }
    },
    async read(key, start = 0, end) {
      return client.file(key).slice(start, end).bytes()
    },
    async move(from, to, type) {
      // S3 has no rename: copy through this process (streamed), then drop the original.
      await client.write(to, client.file(from), { type })
      await client.delete(from)
    },
    async delete(key) {
      await client.delete(key)
    },
    presignPut: (key, expiresIn) => client.presign(key, { method: "PUT", expiresIn }),
    presignGet: (key, expiresIn) => client.presign(key, { method: "GET", expiresIn }),
    localFile: () => null,
    sweep: async () => 0,
  }
}
