import { createHmac, timingSafeEqual } from "node:crypto"
import { iso } from "../clock.ts"
import type { Deps } from "../deps.ts"
import { AppError, badRequest, forbidden, notFound } from "../errors.ts"
import { loadSharp } from "./images.ts"
import type { MediaTable } from "./media.tables.ts"
import {
  folderFor,
  folderMimes,
  kindOf,
  type MediaFolder,
  type MediaKind,
  sniffHeadBytes,
  sniffMime,
  sniffTailBytes,
} from "./sniff.ts"
import { type MediaStorage, tooLarge } from "./storage.ts"

/**
 * Media (CONTRACT §2.6, A5): the app's three-step upload (presigned URL → raw PUT → complete) and the
 * multipart fallback end in the same `ingest`: the type is sniffed from the bytes and checked against the
 * folder, the size against the kind's limit, images are re-encoded without metadata (EXIF GPS) and get a
 * thumbnail, then the row is written. Raw uploads land under `incoming/<key>` and are moved to `<key>` only
 * when complete-upload accepts them, so a file URL never serves unchecked bytes, and a replayed upload URL
 * cannot replace a checked file.
 */

/** MediaResponse (CONTRACT §2.6), plus width and height (additive). */
export type MediaJson = {
  id: string
  file_url: string
  thumbnail_url: string | null
  file_type: MediaKind
  file_size: number
  file_name: string
  mime_type: string
  duration: number | null
  width: number | null
  height: number | null
  created_at: string
}

/** Longest side of an image thumbnail, in pixels. */
const thumbnailSize = 320
/** Images with more pixels than this are refused (decompression bombs). */
const maxImagePixels = 100_000_000
/** The `expires_in` of download links (CONTRACT §2.6). */
const downloadExpiresIn = 3600

const keyPattern =
  /^(avatars|media|documents|voice)\/([0-9a-f-]{36})\/(\d{4})\/(\d{2})\/[0-9a-f]{32}_[A-Za-z0-9._-]{1,100}$/
const thumbnailSuffix = ".thumb.jpg"

/** Whether `key` is a media key this server made (so it is safe as a path under the storage root). */
export const isMediaKey = (key: string) => keyPattern.test(key)

/** The key of a new upload: `<folder>/<user>/<YYYY>/<MM>/<128 random bits>_<safe name>`: unguessable. */
export function newMediaKey(folder: MediaFolder, userId: string, fileName: string, now: number): string {
  const date = new Date(now)
  const random = Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString("hex")
  const month = String(date.getUTCMonth() + 1).padStart(2, "0")
  return `${folder}/${userId}/${date.getUTCFullYear()}/${month}/${random}_${safeName(fileName)}`
}

/** A file name reduced to `[A-Za-z0-9._-]` (at most 100 characters, extension kept) for keys and URLs. */
export function safeName(name: string): string {
  const cleaned = name
    .normalize("NFKD")
    .replace(/[^A-Za-z0-9._-]+/g, "_")
    .replace(/^[._]+/, "")
  if (!cleaned) return "file"
  if (cleaned.length <= 100) return cleaned
  const dot = cleaned.lastIndexOf(".")
  const ext = dot > 0 && cleaned.length - dot <= 10 ? cleaned.slice(dot) : ""
  return cleaned.slice(0, 100 - ext.length) + ext
}

/** Largest upload of a kind (config media.*_limit). */
function kindLimit(deps: Deps, kind: MediaKind): number {
  const m = deps.config.media
  return { IMAGE: m.image_limit, VIDEO: m.video_limit, AUDIO: m.audio_limit, DOCUMENT: m.document_limit }[
    kind
  ]
}

/** Largest raw upload into a folder: the largest limit among the kinds it accepts. */
function folderLimit(deps: Deps, folder: MediaFolder): number {
  return Math.max(...folderMimes[folder].map((mime) => kindLimit(deps, kindOf(mime))))
}

/** The URL the app reaches this server at: server.public_url, else the request's own origin. */
export function baseUrl(deps: Deps, request: Request): string {
  if (deps.config.server.public_url) return deps.config.server.public_url.replace(/\/+$/, "")
  const url = new URL(request.url)
  if (deps.config.server.trust_proxy) {
    const host = request.headers.get("x-forwarded-host")?.split(",")[0]?.trim()
    const proto = request.headers.get("x-forwarded-proto")?.split(",")[0]?.trim()
    if (host) return `${proto === "https" ? "https" : url.protocol.slice(0, -1)}://${host}`
  }
  return url.origin
}

const fileUrlOf = (base: string, key: string) => `${base}/api/media/files/${key}`

/** Upload URLs are signed with a key derived from the server secret (never the secret itself). */
function uploadSignature(deps: Deps, key: string, expires: number): string {
  const signingKey = createHmac("sha256", deps.jwtSecret).update("urge media upload url v1").digest()
  return createHmac("sha256", signingKey).update(`PUT\n${key}\n${expires}`).digest("base64url")
}

const notUploaded = () => badRequest("media.not_uploaded", "File not found in storage. Please upload first.")
const mediaNotFound = () => notFound("media.not_found", "Media not found")

/** How often (at most) abandoned uploads are swept, and how long after its URL expired an upload may still complete. */
const sweepEveryMs = 3600_000
const lastSweep = new WeakMap<MediaStorage, number>()

/**
 * Sweeps uploads never completed, at most hourly, piggybacking on presign requests (no timer to stop): an
 * upload is kept its URL's lifetime plus an hour for complete-upload to follow.
 */
function sweepNowAndThen(deps: Deps, storage: MediaStorage) {
  const now = deps.clock.now()
  if (now - (lastSweep.get(storage) ?? 0) < sweepEveryMs) return
  lastSweep.set(storage, now)
  const before = now - deps.config.media.upload_url_ttl * 1000 - sweepEveryMs
  storage.sweep(before).then(
    (removed) => removed && deps.logger.info("media: abandoned uploads removed", { removed }),
    (error: unknown) =>
      deps.logger.warn("media: sweeping abandoned uploads failed", { error: String(error) }),
  )
}

/** `POST /media/presigned-url`: where to PUT the file, and the URL it will have once complete. */
export function presignUpload(
  deps: Deps,
  storage: MediaStorage,
  userId: string,
  input: { file_name: string; file_type: string; folder?: MediaFolder },
  base: string,
) {
  sweepNowAndThen(deps, storage)
  const folder = input.folder ?? "media"
  const mime = input.file_type.split(";")[0]!.trim().toLowerCase()
  if (!folderMimes[folder].includes(mime))
    throw badRequest("media.type_not_allowed", `File type ${mime || "(none)"} is not allowed in ${folder}.`)
  const key = newMediaKey(folder, userId, input.file_name, deps.clock.now())
  const ttl = Math.round(deps.config.media.upload_url_ttl)
  const expires = Math.floor(deps.clock.now() / 1000) + ttl
  const uploadUrl =
    storage.presignPut(`incoming/${key}`, ttl) ??
    `${base}/api/media/blob/${key}?expires=${expires}&sig=${uploadSignature(deps, key, expires)}`
  return { upload_url: uploadUrl, file_key: key, file_url: fileUrlOf(base, key), expires_in: ttl }
}

/** The raw `PUT <upload_url>` of the local driver: the URL's signature is the only credential (the app sends no token). */
export async function receiveUpload(
  deps: Deps,
  storage: MediaStorage,
  key: string,
  query: { expires?: string; sig?: string },
  request: Request,
) {
  if (storage.driver !== "local" || !isMediaKey(key)) throw notFound("route.not_found", "Not Found")
  const expires = Number(query.expires)
  const expected = uploadSignature(deps, key, expires)
  const given = Buffer.from(query.sig ?? "")
  if (
    !Number.isInteger(expires) ||
    given.length !== expected.length ||
    !timingSafeEqual(given, Buffer.from(expected))
  )
    throw forbidden("media.bad_signature", "This upload link is not valid.")
  if (expires * 1000 <= deps.clock.now())
    throw forbidden("media.upload_expired", "This upload link has expired. Ask for a new one.")
  if (await findByKey(deps, key))
    throw new AppError(409, "media.already_uploaded", "This upload is already complete.")
  const limit = folderLimit(deps, key.slice(0, key.indexOf("/")) as MediaFolder)
  if (Number(request.headers.get("content-length") ?? 0) > limit) throw tooLarge(limit)
  // A JSON Content-Type makes the app's root parser read the body first; no allowed file is JSON anyway.
  if (request.bodyUsed)
    throw new AppError(415, "media.unsupported_type", "An upload is the file's own bytes, not JSON.")
  if (!request.body) throw badRequest("media.empty", "The upload has no body.")
  const size = await storage.writeStream(`incoming/${key}`, request.body, limit)
  return { success: true, file_key: key, file_size: size }
}

/** `POST /media/complete-upload`: checks what the PUT stored and makes it a media row. */
export async function completeUpload(
  deps: Deps,
  storage: MediaStorage,
  userId: string,
  input: {
    file_key: string
    file_name?: string
    duration?: number | null
    width?: number | null
    height?: number | null
  },
  base: string,
): Promise<MediaJson> {
  const key = input.file_key
  const match = keyPattern.exec(key)
  // Another user's key reads as never uploaded: keys are not to be probed.
  if (!match || match[2] !== userId) throw notUploaded()
  const existing = await findByKey(deps, key)
  // A retried complete-upload gets the same answer.
  if (existing) {
    if (existing.user_id !== userId) throw notUploaded()
    return mediaJson(existing)
  }
  const incoming = `incoming/${key}`
  const size = await storage.size(incoming)
  if (size === null) throw notUploaded()
  const head = await storage.read(incoming, 0, sniffHeadBytes)
  const tail = size > sniffHeadBytes ? await storage.read(incoming, Math.max(0, size - sniffTailBytes)) : head
  try {
    return await ingest(deps, storage, {
      userId,
      key,
      folder: match[1] as MediaFolder,
      fileName: input.file_name || key.slice(key.indexOf("_") + 1),
      size,
      head,
      tail,
      bytes: () => storage.read(incoming),
      store: (mime) => storage.move(incoming, key, mime),
      duration: input.duration,
      width: input.width,
      height: input.height,
      base,
    })
  } catch (error) {
    // A refused upload is dropped; the app starts over with a new presigned URL.
    if (error instanceof AppError) await storage.delete(incoming).catch(() => {})
    throw error
  }
}

/** `POST /media/upload` (multipart, field `file`): the folder follows the sniffed type. */
export async function uploadFile(
  deps: Deps,
  storage: MediaStorage,
  userId: string,
  file: File,
  base: string,
): Promise<MediaJson> {
  const largest = Math.max(
    ...(["IMAGE", "VIDEO", "AUDIO", "DOCUMENT"] as const).map((k) => kindLimit(deps, k)),
  )
  if (file.size > largest) throw tooLarge(largest)
  const bytes = new Uint8Array(await file.arrayBuffer())
  const head = bytes.subarray(0, sniffHeadBytes)
  const mime = sniffMime(head, bytes.subarray(Math.max(0, bytes.length - sniffTailBytes)))
  const folder = mime ? folderFor(mime) : "documents"
  const key = newMediaKey(folder, userId, file.name || "file", deps.clock.now())
  return ingest(deps, storage, {
    userId,
    key,
    folder,
    fileName: file.name || "file",
    size: bytes.length,
    head,
    tail: bytes.subarray(Math.max(0, bytes.length - sniffTailBytes)),
    bytes: async () => bytes,
    store: (mime) => storage.write(key, bytes, mime),
    base,
  })
}

type IngestInput = {
  userId: string
  key: string
  folder: MediaFolder
  fileName: string
  size: number
  head: Uint8Array
  tail: Uint8Array
  /** All the bytes (read only for images, which are re-encoded). */
  bytes(): Promise<Uint8Array>
  /** Puts the bytes as they are under `key` (everything but images). */
  store(mime: string): Promise<void>
  duration?: number | null
  width?: number | null
  height?: number | null
  base: string
}

async function ingest(deps: Deps, storage: MediaStorage, input: IngestInput): Promise<MediaJson> {
  const mime = sniffMime(input.head, input.tail)
  if (!mime) throw badRequest("media.unsupported_type", "This type of file cannot be uploaded.")
  if (!folderMimes[input.folder].includes(mime))
    throw badRequest("media.type_not_allowed", `File type ${mime} is not allowed in ${input.folder}.`)
  const kind = kindOf(mime)
  const limit = kindLimit(deps, kind)
  if (input.size > limit) throw tooLarge(limit)
  if (input.size === 0) throw badRequest("media.empty", "The file is empty.")

  let size = input.size
  let width = input.width ?? null
  let height = input.height ?? null
  let thumbnailKey: string | null = null
  if (kind === "IMAGE") {
    const image = await cleanImage(deps, await input.bytes(), mime)
    thumbnailKey = input.key + thumbnailSuffix
    await storage.write(input.key, image.data, mime)
    await storage.write(thumbnailKey, image.thumbnail, "image/jpeg")
    await storage.delete(`incoming/${input.key}`)
    size = image.data.length
    width = image.width
    height = image.height
  } else {
    await input.store(mime)
  }

  const now = deps.clock.now()
  const row: MediaTable = {
    id: Bun.randomUUIDv7(),
    user_id: input.userId,
    file_key: input.key,
    file_url: fileUrlOf(input.base, input.key),
    thumbnail_key: thumbnailKey,
    thumbnail_url: thumbnailKey ? fileUrlOf(input.base, thumbnailKey) : null,
    file_name: input.fileName.slice(0, 255),
    file_type: kind,
    mime_type: mime,
    file_size: size,
    duration: wholeOrNull(input.duration),
    width: wholeOrNull(width),
    height: wholeOrNull(height),
    created_at: now,
    updated_at: now,
  }
  await deps.database.db.insertInto("media").values(row).execute()
  return mediaJson(row)
}

const wholeOrNull = (n: number | null | undefined) =>
  n === null || n === undefined || !Number.isFinite(n) ? null : Math.max(0, Math.round(n))

/**
 * Re-encodes an image in its own format with no metadata (sharp writes none unless asked: EXIF with its GPS
 * position, XMP and IPTC are gone), orientation applied to the pixels first; plus a JPEG thumbnail.
 */
async function cleanImage(deps: Deps, bytes: Uint8Array, mime: string) {
  const sharp = await loadSharp({ dataDir: deps.config.data.dir })
  if (!sharp)
    throw new AppError(
      503,
      "media.images_unavailable",
      "Image uploads are unavailable on this server right now.",
    )
  try {
    const animated = mime === "image/gif" || mime === "image/webp"
    const source = sharp(bytes, { animated, limitInputPixels: maxImagePixels })
    const meta = await source.metadata()
    const pages = meta.pages ?? 1
    // Rotating a multi-frame image is not supported; animations carry no orientation worth applying.
    let pipeline = pages === 1 ? source.rotate() : source
    if (mime === "image/jpeg") pipeline = pipeline.jpeg({ quality: 90 })
    else if (mime === "image/png") pipeline = pipeline.png()
    else if (mime === "image/webp") pipeline = pipeline.webp({ quality: 90 })
    else pipeline = pipeline.gif()
    const { data, info } = await pipeline.toBuffer({ resolveWithObject: true })
    const thumbnail = await sharp(data, { limitInputPixels: maxImagePixels })
      .resize(thumbnailSize, thumbnailSize, { fit: "inside", withoutEnlargement: true })
      .flatten({ background: "#ffffff" })
      .jpeg({ quality: 80 })
      .toBuffer()
    return {
      data: new Uint8Array(data),
      thumbnail: new Uint8Array(thumbnail),
      width: info.width,
      height: pages > 1 ? (info.pageHeight ?? meta.pageHeight ?? info.height) : info.height,
    }
  } catch (error) {
    deps.logger.info("media: image refused", { reason: (error as Error).message.split("\n")[0] })
    throw badRequest("media.invalid_image", "The image could not be read.")
  }
}

function findByKey(deps: Deps, key: string) {
  return deps.database.db.selectFrom("media").selectAll().where("file_key", "=", key).executeTakeFirst()
}

async function findOwned(deps: Deps, userId: string, id: string) {
  const row = await deps.database.db
    .selectFrom("media")
    .selectAll()
    .where("id", "=", id)
    .where("user_id", "=", userId)
    .executeTakeFirst()
  if (!row) throw mediaNotFound()
  return row
}

export function mediaJson(row: MediaTable): MediaJson {
  return {
    id: row.id,
    file_url: row.file_url,
    thumbnail_url: row.thumbnail_url,
    file_type: row.file_type,
    file_size: Number(row.file_size),
    file_name: row.file_name,
    mime_type: row.mime_type,
    duration: row.duration,
    width: row.width,
    height: row.height,
    created_at: iso(Number(row.created_at))!,
  }
}

/** `GET /media/:id`: the owner's media (anyone else: 404). */
export async function getMedia(deps: Deps, userId: string, id: string): Promise<MediaJson> {
  return mediaJson(await findOwned(deps, userId, id))
}

/** `GET /media/:id/download`: a link that downloads the file (as an attachment). */
export async function downloadLink(deps: Deps, userId: string, id: string) {
  const row = await findOwned(deps, userId, id)
  return { download_url: `${row.file_url}?download=1`, expires_in: downloadExpiresIn }
}

/** `DELETE /media/:id`: the owner only (anyone else: 404); the files go after the row. */
export async function deleteMedia(deps: Deps, storage: MediaStorage, userId: string, id: string) {
  const row = await deps.database.db
    .deleteFrom("media")
    .where("id", "=", id)
    .where("user_id", "=", userId)
    .returning(["file_key", "thumbnail_key"])
    .executeTakeFirst()
  if (!row) throw mediaNotFound()
  for (const key of [row.file_key, row.thumbnail_key])
    if (key)
      await storage.delete(key).catch((error: unknown) => {
        deps.logger.warn("media: file of a deleted row not removed", { key, error: String(error) })
      })
  return { success: true, message: "Media deleted" }
}

/**
 * `GET <file_url>`: the file, while its row exists. Local: sent with Content-Type (sniffed), Content-Length,
 * single-range requests (206/416), ETag (the row id: a key's bytes never change) and long private caching.
 * S3: a redirect to a short-lived presigned GET.
 */
export async function serveFile(
  deps: Deps,
  storage: MediaStorage,
  key: string,
  request: Request,
  download: boolean,
): Promise<Response> {
  const isThumbnail = key.endsWith(thumbnailSuffix)
  const mainKey = isThumbnail ? key.slice(0, -thumbnailSuffix.length) : key
  if (!isMediaKey(mainKey)) throw notFound("media.not_found", "Not Found")
  const row = await findByKey(deps, mainKey)
  if (!row || (isThumbnail && row.thumbnail_key !== key)) throw notFound("media.not_found", "Not Found")

  const etag = `"${row.id}${isThumbnail ? "-t" : ""}"`
  const headers: Record<string, string> = {
    etag,
    "cache-control": "private, max-age=31536000, immutable",
    "x-content-type-options": "nosniff",
  }
  if (download)
    headers["content-disposition"] = `attachment; filename*=UTF-8''${encodeURIComponent(row.file_name)}`
  const ifNoneMatch = request.headers.get("if-none-match")
  if (ifNoneMatch && ifNoneMatch.split(",").some((tag) => tag.trim() === etag))
    return new Response(null, { status: 304, headers })

  const presigned = storage.presignGet(key, 3600)
  if (presigned)
    return new Response(null, {
      status: 302,
      headers: { location: presigned, "cache-control": "private, max-age=300" },
    })

  const file = storage.localFile(key)!
  if (!(await file.exists())) throw notFound("media.not_found", "Not Found")
  const size = file.size
  headers["content-type"] = isThumbnail ? "image/jpeg" : row.mime_type
  headers["accept-ranges"] = "bytes"
  const rangeHeader = request.headers.get("range")
  const ifRange = request.headers.get("if-range")
  const range = rangeHeader && (!ifRange || ifRange === etag) ? parseRange(rangeHeader, size) : null
  if (range === "unsatisfiable")
    return new Response(null, { status: 416, headers: { ...headers, "content-range": `bytes */${size}` } })
  if (range) {
    const [start, end] = range
    headers["content-range"] = `bytes ${start}-${end}/${size}`
    headers["content-length"] = String(end - start + 1)
    return new Response(file.slice(start, end + 1), { status: 206, headers })
  }
  headers["content-length"] = String(size)
  return new Response(file, { status: 200, headers })
}

/** One `bytes=` range (inclusive end); several ranges or a malformed header: null (the whole file is sent). */
export function parseRange(header: string, size: number): [number, number] | "unsatisfiable" | null {
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim())
  if (!match || (match[1] === "" && match[2] === "")) return null
  if (match[1] === "") {
    const suffix = Number(match[2])
    if (suffix === 0 || size === 0) return "unsatisfiable"
    return [Math.max(0, size - suffix), size - 1]
  }
  const start = Number(match[1])
  const end = match[2] === "" ? size - 1 : Math.min(Number(match[2]), size - 1)
  if (start >= size) return "unsatisfiable"
  if (end < start) return null
  return [start, end]
}
