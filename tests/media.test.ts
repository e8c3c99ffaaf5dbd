import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import sharp from "sharp"
import { existsSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { loadConfig } from "../src/config.ts"
import { createMediaStorage } from "../src/media/storage.ts"
import { ChildServer } from "./helpers/child.ts"
import { createTestDatabase, startTestServer, testPostgresUrl, type TestServer } from "./helpers/server.ts"
import { signUp, type SignedUpUser } from "./helpers/users.ts"
import { waitFor } from "./helpers/wait.ts"

/** Media through the real server: the app's three-step upload, the multipart fallback, serving, refusals. */

const png = (width = 64, height = 48) =>
  sharp({ create: { width, height, channels: 3, background: "#ff8800" } })
    .png()
    .toBuffer()

/** A PNG of noise: does not compress, so its size follows its pixels. */
const noisyPng = (width: number, height: number) =>
  sharp({
    create: {
      width,
      height,
      channels: 3,
      background: "#000",
      noise: { type: "gaussian", mean: 128, sigma: 40 },
    },
  })
    .png()
    .toBuffer()

/** A JPEG as a phone takes it: GPS position in EXIF and an orientation (6: rotate 90° to display). */
const jpegWithGps = () =>
  sharp({ create: { width: 40, height: 20, channels: 3, background: "#3366ff" } })
    .withMetadata({ orientation: 6 })
    .withExifMerge({ IFD3: { GPSLatitudeRef: "N", GPSLatitude: "48/1 51/1 2400/100" } })
    .jpeg()
    .toBuffer()

/** The EXIF tag that points to the GPS block (0x8825), little-endian as libvips writes it. */
const gpsPointer = Buffer.from([0x25, 0x88])

const elf = () => Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0]), Buffer.alloc(200, 7)])
const mp4 = () =>
  Buffer.concat([Buffer.from("\0\0\0\x18ftypisom\0\0\x02\0isomiso2", "latin1"), Buffer.alloc(5000, 1)])
const m4a = () =>
  Buffer.concat([Buffer.from("\0\0\0\x1cftypM4A \0\0\0\0M4A isom", "latin1"), Buffer.alloc(3000, 2)])
const pdf = () => Buffer.from("%PDF-1.7\n" + "x".repeat(3000) + "\n%%EOF\n")
/** Enough of a .docx for sniffing: a zip whose central directory names word/document.xml. */
const docx = () =>
  Buffer.concat([
    Buffer.from("PK\x03\x04", "latin1"),
    Buffer.alloc(6000, 3),
    Buffer.from("PK\x01\x02word/document.xml"),
  ])

function form(bytes: Uint8Array, name: string, type: string) {
  const data = new FormData()
  data.append("file", new File([bytes], name, { type }))
  return data
}

async function multipart(server: TestServer, user: SignedUpUser, data: FormData, path = "/api/media/upload") {
  const res = await fetch(server.url + path, {
    method: "POST",
    headers: { authorization: `Bearer ${user.accessToken}` },
    body: data,
  })
  return { status: res.status, body: (await res.json()) as any }
}

/** The app's upload: presigned URL, raw PUT (no token), complete-upload. Returns each step's answer. */
async function threeStep(
  server: TestServer,
  user: SignedUpUser,
  bytes: Uint8Array,
  options: { name: string; type: string; folder?: string },
) {
  const presign = await server.api("POST", "/api/media/presigned-url", {
    token: user.accessToken,
    body: { file_name: options.name, file_type: options.type, folder: options.folder ?? "media" },
  })
  expect(presign.status).toBe(200)
  const put = await fetch(presign.body.upload_url, {
    method: "PUT",
    headers: { "content-type": options.type },
    body: bytes,
  })
  const complete = await server.api("POST", "/api/media/complete-upload", {
    token: user.accessToken,
    body: {
      file_key: presign.body.file_key,
      file_url: presign.body.file_url,
      file_type: "IMAGE",
      file_size: 0,
      file_name: options.name,
      mime_type: options.type,
    },
  })
  return { presign, put, complete }
}

describe("media, local storage", () => {
  let server: TestServer
  let alice: SignedUpUser
  let bob: SignedUpUser

  beforeAll(async () => {
    server = await startTestServer()
    alice = await signUp(server)
    bob = await signUp(server)
  })
  afterAll(() => server.stop())

  test("three-step upload: the file is served at its absolute file_url, with a thumbnail", async () => {
    const bytes = await png()
    const { presign, put, complete } = await threeStep(server, alice, bytes, {
      name: "photo 1.png",
      type: "image/png",
    })
    expect(presign.body.expires_in).toBe(3600)
    expect(presign.body.upload_url.startsWith(server.url + "/api/media/blob/")).toBe(true)
    expect(presign.body.file_key).toMatch(
      new RegExp(`^media/${alice.user.id}/\\d{4}/\\d{2}/[0-9a-f]{32}_photo_1\\.png$`),
    )
    expect(presign.body.file_url).toBe(`${server.url}/api/media/files/${presign.body.file_key}`)
    expect(put.status).toBe(200)
    expect(complete.status).toBe(200)
    const media = complete.body
    expect(media).toMatchObject({
      file_url: presign.body.file_url,
      file_type: "IMAGE",
      file_name: "photo 1.png",
      mime_type: "image/png",
      width: 64,
      height: 48,
      duration: null,
    })
    expect(media.created_at).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/)

    const file = await fetch(media.file_url)
    expect(file.status).toBe(200)
    expect(file.headers.get("content-type")).toBe("image/png")
    expect(Number(file.headers.get("content-length"))).toBe(media.file_size)
    expect(file.headers.get("etag")).toBe(`"${media.id}"`)
    expect(file.headers.get("cache-control")).toContain("max-age=")
    const served = new Uint8Array(await file.arrayBuffer())
    expect(served.length).toBe(media.file_size)
    expect((await sharp(served).metadata()).format).toBe("png")

    const thumb = await fetch(media.thumbnail_url)
    expect(thumb.status).toBe(200)
    expect(thumb.headers.get("content-type")).toBe("image/jpeg")
    expect((await sharp(new Uint8Array(await thumb.arrayBuffer())).metadata()).format).toBe("jpeg")

    const again = await server.api("GET", `/api/media/${media.id}`, { token: alice.accessToken })
    expect(again.status).toBe(200)
    expect(again.body).toEqual(media)
    // A retried complete-upload returns the same media.
    const retried = await server.api("POST", "/api/media/complete-upload", {
      token: alice.accessToken,
      body: { file_key: presign.body.file_key },
    })
    expect(retried.body.id).toBe(media.id)
    // The upload URL cannot replace a checked file.
    const replay = await fetch(presign.body.upload_url, { method: "PUT", body: elf() })
    expect(replay.status).toBe(409)
    expect(new Uint8Array(await (await fetch(media.file_url)).arrayBuffer())).toEqual(served)
  })

  test("the file URL serves nothing before complete-upload accepted the file", async () => {
    const presign = await server.api("POST", "/api/media/presigned-url", {
      token: alice.accessToken,
      body: { file_name: "a.png", file_type: "image/png" },
    })
    await fetch(presign.body.upload_url, { method: "PUT", body: await png() })
    expect((await fetch(presign.body.file_url)).status).toBe(404)
  })

  test("multipart upload, also at the root path the production app calls", async () => {
    const bytes = await png(30, 30)
    const res = await multipart(server, alice, form(bytes, "p.png", "image/png"))
    expect(res.status).toBe(200)
    expect(res.body).toMatchObject({ file_type: "IMAGE", mime_type: "image/png", width: 30, height: 30 })
    expect(res.body.file_url).toContain("/api/media/files/media/")
    const root = await multipart(server, alice, form(pdf(), "doc.pdf", "application/pdf"), "/media/upload")
    expect(root.status).toBe(200)
    expect(root.body).toMatchObject({
      file_type: "DOCUMENT",
      mime_type: "application/pdf",
      thumbnail_url: null,
    })
    expect(root.body.file_url).toContain("/api/media/files/documents/")
    const voice = await multipart(server, alice, form(m4a(), "note.m4a", "audio/m4a"))
    expect(voice.body).toMatchObject({ file_type: "AUDIO", mime_type: "audio/mp4" })
    expect(voice.body.file_url).toContain("/api/media/files/voice/")
    const word = await multipart(server, alice, form(docx(), "cv.docx", "application/octet-stream"))
    expect(word.body.mime_type).toBe(
      "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    )
  })

  test("video, pdf and voice through the three steps keep their bytes", async () => {
    const video = await threeStep(server, alice, mp4(), { name: "clip.mp4", type: "video/mp4" })
    expect(video.complete.status).toBe(200)
    expect(video.complete.body).toMatchObject({
      file_type: "VIDEO",
      mime_type: "video/mp4",
      file_size: mp4().length,
    })
    expect(Buffer.from(await (await fetch(video.complete.body.file_url)).arrayBuffer())).toEqual(mp4())
    const doc = await threeStep(server, alice, pdf(), {
      name: "a.pdf",
      type: "application/pdf",
      folder: "documents",
    })
    expect(doc.complete.body.mime_type).toBe("application/pdf")
    const note = await threeStep(server, alice, m4a(), { name: "n.m4a", type: "audio/m4a", folder: "voice" })
    expect(note.complete.body).toMatchObject({ file_type: "AUDIO", mime_type: "audio/mp4" })
  })

  test("content type is sniffed: PNG bytes named .jpg are image/png; an executable named .jpg is refused", async () => {
    const disguised = await multipart(server, alice, form(await png(), "holiday.jpg", "image/jpeg"))
    expect(disguised.status).toBe(200)
    expect(disguised.body.mime_type).toBe("image/png")
    const served = await fetch(disguised.body.file_url)
    expect(served.headers.get("content-type")).toBe("image/png")

    const exe = await multipart(server, alice, form(elf(), "cat.jpg", "image/jpeg"))
    expect(exe.status).toBe(400)
    expect(exe.body.code).toBe("media.unsupported_type")

    const raw = await threeStep(server, alice, elf(), { name: "cat.jpg", type: "image/jpeg" })
    expect(raw.put.status).toBe(200)
    expect(raw.complete.status).toBe(400)
    expect(raw.complete.body.code).toBe("media.unsupported_type")
    expect(typeof raw.complete.body.detail).toBe("string")
    // Refused bytes are dropped: completing again finds nothing.
    const again = await server.api("POST", "/api/media/complete-upload", {
      token: alice.accessToken,
      body: { file_key: raw.presign.body.file_key },
    })
    expect(again.status).toBe(400)
    expect(again.body.code).toBe("media.not_uploaded")

    // A PDF uploaded to the media folder is not allowed there.
    const wrongFolder = await threeStep(server, alice, pdf(), { name: "x.png", type: "image/png" })
    expect(wrongFolder.complete.status).toBe(400)
    expect(wrongFolder.complete.body.code).toBe("media.type_not_allowed")
  })

  test("EXIF location is stripped from images and the orientation applied", async () => {
    const original = await jpegWithGps()
    const before = await sharp(original).metadata()
    expect(before.exif?.includes(gpsPointer)).toBe(true)
    expect(before.orientation).toBe(6)

    for (const upload of [
      async () => (await multipart(server, alice, form(original, "gps.jpg", "image/jpeg"))).body,
      async () =>
        (await threeStep(server, alice, original, { name: "gps.jpg", type: "image/jpeg" })).complete.body,
    ]) {
      const media = await upload()
      expect(media.mime_type).toBe("image/jpeg")
      const served = new Uint8Array(await (await fetch(media.file_url)).arrayBuffer())
      const after = await sharp(served).metadata()
      expect(after.exif).toBeUndefined()
      expect(after.xmp).toBeUndefined()
      expect(Buffer.from(served).includes(Buffer.from("Exif\0\0", "latin1"))).toBe(false)
      // Turned upright: 40×20 stored with orientation 6 displays as 20×40.
      expect([after.width, after.height, after.orientation ?? 1]).toEqual([20, 40, 1])
      expect([media.width, media.height]).toEqual([20, 40])
    }
  })

  test("range requests: 206 with the right bytes, suffix ranges, 416, and 304 on a matching ETag", async () => {
    const bytes = mp4()
    const media = (await multipart(server, alice, form(bytes, "v.mp4", "video/mp4"))).body
    const part = await fetch(media.file_url, { headers: { range: "bytes=10-19" } })
    expect(part.status).toBe(206)
    expect(part.headers.get("content-range")).toBe(`bytes 10-19/${bytes.length}`)
    expect(part.headers.get("content-length")).toBe("10")
    expect(part.headers.get("content-type")).toBe("video/mp4")
    expect(Buffer.from(await part.arrayBuffer())).toEqual(bytes.subarray(10, 20))

    const suffix = await fetch(media.file_url, { headers: { range: "bytes=-5" } })
    expect(suffix.status).toBe(206)
    expect(Buffer.from(await suffix.arrayBuffer())).toEqual(bytes.subarray(bytes.length - 5))
    const open = await fetch(media.file_url, { headers: { range: `bytes=${bytes.length - 3}-` } })
    expect(Buffer.from(await open.arrayBuffer())).toEqual(bytes.subarray(bytes.length - 3))

    const beyond = await fetch(media.file_url, { headers: { range: `bytes=${bytes.length}-` } })
    expect(beyond.status).toBe(416)
    expect(beyond.headers.get("content-range")).toBe(`bytes */${bytes.length}`)

    const head = await fetch(media.file_url, { method: "HEAD" })
    expect(head.status).toBe(200)
    expect(head.headers.get("content-length")).toBe(String(bytes.length))
    expect(head.headers.get("content-type")).toBe("video/mp4")
    expect((await head.arrayBuffer()).byteLength).toBe(0)

    const cached = await fetch(media.file_url, { headers: { "if-none-match": `"${media.id}"` } })
    expect(cached.status).toBe(304)
    const download = await server.api("GET", `/api/media/${media.id}/download`, { token: alice.accessToken })
    expect(download.status).toBe(200)
    expect(download.body.expires_in).toBe(3600)
    const attachment = await fetch(download.body.download_url)
    expect(attachment.headers.get("content-disposition")).toContain("attachment")
    expect(Buffer.from(await attachment.arrayBuffer())).toEqual(bytes)
  })

  test("every type of the allow-lists is recognised from its bytes, whatever the name says", async () => {
    const gif = await sharp({ create: { width: 8, height: 8, channels: 3, background: "#00ff00" } })
      .gif()
      .toBuffer()
    const webp = await sharp({ create: { width: 8, height: 8, channels: 3, background: "#00ff00" } })
      .webp()
      .toBuffer()
    const pad = (head: Buffer) => Buffer.concat([head, Buffer.alloc(2000, 5)])
    const cases: [Uint8Array, string, string, string][] = [
      [gif, "image/gif", "IMAGE", "media"],
      [webp, "image/webp", "IMAGE", "media"],
      [pad(Buffer.from("\0\0\0\x14ftypqt  \0\0\0\0qt  ", "latin1")), "video/quicktime", "VIDEO", "media"],
      [
        pad(Buffer.from([0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1])),
        "application/msword",
        "DOCUMENT",
        "documents",
      ],
      [pad(Buffer.from("ID3\x04\0\0\0\0\0\0", "latin1")), "audio/mpeg", "AUDIO", "voice"],
      [pad(Buffer.from([0xff, 0xfb, 0x90, 0x64])), "audio/mpeg", "AUDIO", "voice"],
      [pad(Buffer.from("RIFF\0\0\0\0WAVEfmt ", "latin1")), "audio/wav", "AUDIO", "voice"],
      [pad(Buffer.from([0xff, 0xf1, 0x50, 0x80])), "audio/aac", "AUDIO", "voice"],
    ]
    for (const [bytes, mime, kind, folder] of cases) {
      const res = await multipart(server, alice, form(bytes, "file.bin", "application/octet-stream"))
      expect(res.status).toBe(200)
      expect(res.body).toMatchObject({ mime_type: mime, file_type: kind })
      expect(res.body.file_url).toContain(`/api/media/files/${folder}/`)
    }
    // A zip that is not a Word document, HTML and SVG are refused.
    for (const bytes of [
      pad(Buffer.from("PK\x03\x04", "latin1")),
      Buffer.from("<!doctype html><script>alert(1)</script>"),
      Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'),
    ]) {
      const res = await multipart(server, alice, form(bytes, "x.png", "image/png"))
      expect(res.status).toBe(400)
      expect(res.body.code).toBe("media.unsupported_type")
    }
  })

  test("refusals: no token, wrong MIME, forged or expired upload URL, someone else's media", async () => {
    for (const [method, path, body] of [
      ["POST", "/api/media/presigned-url", { file_name: "a.png", file_type: "image/png" }],
      ["POST", "/api/media/complete-upload", { file_key: "media/x" }],
      ["GET", "/api/media/x"],
      ["DELETE", "/api/media/x"],
      ["GET", "/api/media/x/download"],
    ] as const) {
      for (const token of [undefined, "not-a-token"]) {
        const res = await server.api(method, path, { body, token })
        expect(res.status).toBe(401)
        expect(res.headers.get("www-authenticate")).toBe("Bearer")
      }
    }
    const guestUpload = await fetch(server.url + "/api/media/upload", {
      method: "POST",
      body: form(await png(), "a.png", "image/png"),
    })
    expect(guestUpload.status).toBe(401)
    for (const [folder, type] of [
      ["avatars", "video/mp4"],
      ["media", "application/pdf"],
      ["documents", "image/png"],
      ["voice", "application/x-msdownload"],
    ]) {
      const res = await server.api("POST", "/api/media/presigned-url", {
        token: alice.accessToken,
        body: { file_name: "f", file_type: type, folder },
      })
      expect(res.status).toBe(400)
      expect(res.body.code).toBe("media.type_not_allowed")
    }
    const badFolder = await server.api("POST", "/api/media/presigned-url", {
      token: alice.accessToken,
      body: { file_name: "f", file_type: "image/png", folder: "elsewhere" },
    })
    expect(badFolder.status).toBe(422)

    const presign = await server.api("POST", "/api/media/presigned-url", {
      token: alice.accessToken,
      body: { file_name: "a.png", file_type: "image/png", folder: "avatars" },
    })
    const url = new URL(presign.body.upload_url)
    const forged = new URL(url)
    forged.searchParams.set(
      "sig",
      url.searchParams.get("sig")!.replace(/^./, (c) => (c === "A" ? "B" : "A")),
    )
    expect((await fetch(forged, { method: "PUT", body: await png() })).status).toBe(403)
    const later = new URL(url)
    later.searchParams.set("expires", String(Number(url.searchParams.get("expires")) + 3600))
    expect((await fetch(later, { method: "PUT", body: await png() })).status).toBe(403)
    const json = await fetch(url, {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: "{}",
    })
    expect(json.status).toBe(415)
    const empty = await fetch(url, { method: "PUT" })
    expect(empty.status).toBe(400)
    const unsigned = new URL(url)
    unsigned.search = ""
    expect((await fetch(unsigned, { method: "PUT", body: await png() })).status).toBe(403)
    // Signed for one key, used for another.
    const otherKey = url.pathname.replace(/[0-9a-f]{32}_/, "0".repeat(32) + "_")
    expect(
      (await fetch(url.origin + otherKey + url.search, { method: "PUT", body: await png() })).status,
    ).toBe(403)

    // Bob cannot complete, read, download or delete Alice's media.
    const mine = (await multipart(server, alice, form(await png(), "mine.png", "image/png"))).body
    const stolen = await threeStep(server, alice, await png(), { name: "s.png", type: "image/png" })
    expect(stolen.complete.status).toBe(200)
    const presignForBob = await server.api("POST", "/api/media/complete-upload", {
      token: bob.accessToken,
      body: { file_key: stolen.presign.body.file_key },
    })
    expect(presignForBob.status).toBe(400)
    for (const [method, path] of [
      ["GET", `/api/media/${mine.id}`],
      ["GET", `/api/media/${mine.id}/download`],
      ["DELETE", `/api/media/${mine.id}`],
      ["GET", "/api/media/not-a-uuid"],
      ["DELETE", "/api/media/00000000-0000-0000-0000-000000000000"],
    ] as const) {
      const res = await server.api(method, path, { token: bob.accessToken })
      expect(res.status).toBe(404)
      expect(res.body.code).toBe("media.not_found")
    }
    expect((await fetch(mine.file_url)).status).toBe(200)

    // The owner deletes: the row and the file are gone.
    const deleted = await server.api("DELETE", `/api/media/${mine.id}`, { token: alice.accessToken })
    expect(deleted.status).toBe(200)
    expect(deleted.body).toEqual({ success: true, message: "Media deleted" })
    expect((await fetch(mine.file_url)).status).toBe(404)
    expect((await fetch(mine.thumbnail_url)).status).toBe(404)
    expect((await server.api("GET", `/api/media/${mine.id}`, { token: alice.accessToken })).status).toBe(404)
    // Paths that are no media key are 404, not a path outside the media directory.
    expect((await fetch(`${server.url}/api/media/files/media/..%2F..%2F/2026/01/x`)).status).toBe(404)

    // Last (it outlives the access tokens): an upload URL past its expiry.
    server.clock.advance(3601_000)
    const expired = await fetch(url, { method: "PUT", body: await png() })
    expect(expired.status).toBe(403)
    expect(((await expired.json()) as any).code).toBe("media.upload_expired")
  })

  test("the OpenAPI document describes the media routes from their schemas", async () => {
    const doc = (await server.api("GET", "/docs/json")).body
    const presign = doc.paths["/api/media/presigned-url"].post
    expect(presign.requestBody.content["application/json"].schema.properties.folder).toBeDefined()
    expect(presign.responses["200"].content["application/json"].schema.properties.upload_url).toBeDefined()
    const upload = doc.paths["/api/media/upload"].post
    expect(upload.requestBody.content["multipart/form-data"].schema.properties.file.format).toBe("binary")
    expect(upload.responses["200"].content["application/json"].schema.properties.file_url).toBeDefined()
    expect(doc.paths["/api/media/blob/{folder}/{user}/{year}/{month}/{name}"].put).toBeDefined()
    expect(Object.keys(doc.paths["/api/media/{id}"]).sort()).toEqual(["delete", "get"])
  })
})

describe("media, size limits", () => {
  let server: TestServer
  let alice: SignedUpUser
  beforeAll(async () => {
    server = await startTestServer({
      config: { "media.image_limit": "4KB", "media.video_limit": "8KB", "media.document_limit": 2000 },
    })
    alice = await signUp(server)
  })
  afterAll(() => server.stop())

  test("too big is 413, by kind: on the raw PUT, at complete-upload and in multipart", async () => {
    const big = await noisyPng(45, 45)
    expect(big.length).toBeGreaterThan(4096)
    expect(big.length).toBeLessThan(8192)
    const multi = await multipart(server, alice, form(big, "big.png", "image/png"))
    expect(multi.status).toBe(413)
    expect(multi.body.code).toBe("media.too_large")
    // avatars take images only: a PUT over the image limit is cut off.
    const avatar = await threeStep(server, alice, big, {
      name: "a.png",
      type: "image/png",
      folder: "avatars",
    })
    expect(avatar.put.status).toBe(413)
    expect(avatar.complete.status).toBe(400)
    // The media folder takes videos up to 8 KB, so the PUT passes and complete-upload applies the image limit.
    const media = await threeStep(server, alice, big, { name: "a.png", type: "image/png" })
    expect(media.put.status).toBe(200)
    expect(media.complete.status).toBe(413)
    // A 5,000-byte video passes, a 3,000-byte PDF does not.
    expect((await multipart(server, alice, form(mp4(), "v.mp4", "video/mp4"))).status).toBe(200)
    expect((await multipart(server, alice, form(pdf(), "d.pdf", "application/pdf"))).status).toBe(413)
  })
})

describe("media, abandoned uploads", () => {
  let server: TestServer
  afterAll(() => server.stop())

  test("an upload never completed is removed once its URL has expired plus an hour", async () => {
    server = await startTestServer()
    const alice = await signUp(server)
    const { presign, put } = await threeStep(server, alice, pdf(), {
      name: "a.pdf",
      type: "application/pdf",
      folder: "documents",
    })
    expect(put.status).toBe(200)
    // (threeStep completed it; upload a second one and leave it.)
    const left = await server.api("POST", "/api/media/presigned-url", {
      token: alice.accessToken,
      body: { file_name: "b.pdf", file_type: "application/pdf", folder: "documents" },
    })
    await fetch(left.body.upload_url, { method: "PUT", body: pdf() })
    const incoming = join(server.deps.config.data.dir, "media", "incoming", left.body.file_key)
    expect(existsSync(incoming)).toBe(true)

    server.clock.advance(3600_000 + 30 * 60_000)
    const bob = await signUp(server)
    await server.api("POST", "/api/media/presigned-url", {
      token: bob.accessToken,
      body: { file_name: "c.pdf", file_type: "application/pdf", folder: "documents" },
    })
    // Not yet: the upload may still be completed for an hour after its URL expired.
    expect(existsSync(incoming)).toBe(true)

    server.clock.advance(3600_000)
    const carol = await signUp(server)
    await server.api("POST", "/api/media/presigned-url", {
      token: carol.accessToken,
      body: { file_name: "c.pdf", file_type: "application/pdf", folder: "documents" },
    })
    await waitFor(() => !existsSync(incoming), 5000, "the abandoned upload to be removed")
    // The completed one is untouched.
    expect((await fetch(server.url + `/api/media/files/${presign.body.file_key}`)).status).toBe(200)
  })
})

describe("media, durability", () => {
  test("kill -9 right after uploads: every acknowledged upload is served after the restart", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "urge-media-kill9-"))
    const env: Record<string, string> = {
      URGE_DATA_DIR: dataDir,
      URGE_SERVER_HOST: "127.0.0.1",
      URGE_SERVER_PORT: "0",
      URGE_AUTH_JWT_SECRET: "kill9-secret-kill9-secret-kill9-secret",
      URGE_RATE_LIMIT_ENABLED: "false",
      URGE_LOG_REQUESTS: "false",
    }
    const database = testPostgresUrl ? await createTestDatabase() : null
    if (database) env.URGE_DATABASE_URL = database.url
    let child = await ChildServer.start(env)
    try {
      const asServer = () => ({ url: child.base, api: child.api.bind(child), logs: child.logs }) as any
      const alice = await signUp(asServer())
      const files = [await png(), mp4(), pdf(), m4a(), await jpegWithGps(), docx()]
      const names = ["a.png", "b.mp4", "c.pdf", "d.m4a", "e.jpg", "f.docx"]
      const acked = await Promise.all(
        files.map(async (bytes, i) => {
          const res = await multipart(asServer(), alice, form(bytes, names[i]!, "application/octet-stream"))
          expect(res.status).toBe(200)
          return res.body
        }),
      )
      const viaPut = await threeStep(asServer(), alice, pdf(), {
        name: "g.pdf",
        type: "application/pdf",
        folder: "documents",
      })
      expect(viaPut.complete.status).toBe(200)
      acked.push(viaPut.complete.body)
      const served = new Map<string, Uint8Array>()
      // What the server acknowledged, read before the kill: the same bytes must come back after it.
      for (const media of acked)
        served.set(media.id, Buffer.from(await (await fetch(media.file_url)).arrayBuffer()))
      await child.kill9()

      child = await ChildServer.start(env)
      for (const media of acked) {
        const path = new URL(media.file_url).pathname
        const res = await fetch(child.base + path)
        expect(res.status).toBe(200)
        expect(Buffer.from(await res.arrayBuffer())).toEqual(Buffer.from(served.get(media.id)!))
        const row = await child.api("GET", `/api/media/${media.id}`, { token: alice.accessToken })
        expect(row.body.id).toBe(media.id)
      }
    } finally {
      await child.kill9()
      await database?.drop()
      rmSync(dataDir, { recursive: true, force: true })
    }
  }, 60_000)
})

/**
 * A stand-in for S3 on localhost: keeps objects in memory and records every request, so the test checks what
 * the s3 driver really sends (path-style URLs, SigV4 headers or presigned query parameters, bodies).
 */
function fakeS3() {
  const objects = new Map<string, { body: Uint8Array; type: string | null }>()
  const requests: { method: string; path: string; query: URLSearchParams; headers: Headers; body: number }[] =
    []
  const server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    async fetch(request) {
      const url = new URL(request.url)
      const body = new Uint8Array(await request.arrayBuffer())
      const path = decodeURIComponent(url.pathname)
      requests.push({
        method: request.method,
        path,
        query: url.searchParams,
        headers: request.headers,
        body: body.length,
      })
      const signed =
        /^AWS4-HMAC-SHA256 Credential=test-key\/\d{8}\/eu-test-1\/s3\/aws4_request, ?SignedHeaders=[a-z0-9;-]+, ?Signature=[0-9a-f]{64}$/.test(
          request.headers.get("authorization") ?? "",
        ) ||
        (url.searchParams.get("X-Amz-Algorithm") === "AWS4-HMAC-SHA256" &&
          /^test-key\/\d{8}\/eu-test-1\/s3\/aws4_request$/.test(
            url.searchParams.get("X-Amz-Credential") ?? "",
          ) &&
          /^[0-9a-f]{64}$/.test(url.searchParams.get("X-Amz-Signature") ?? ""))
      if (!signed) return new Response("<Error><Code>AccessDenied</Code></Error>", { status: 403 })
      const object = objects.get(path)
      switch (request.method) {
        case "PUT":
          objects.set(path, { body, type: request.headers.get("content-type") })
          return new Response(null, { status: 200, headers: { etag: '"e"' } })
        case "DELETE":
          objects.delete(path)
          return new Response(null, { status: 204 })
        case "HEAD":
        case "GET": {
          if (!object)
            return new Response("<Error><Code>NoSuchKey</Code><Message>not found</Message></Error>", {
              status: 404,
              headers: { "content-type": "application/xml" },
            })
          const headers = {
            "content-type": object.type ?? "application/octet-stream",
            etag: '"e"',
            "last-modified": new Date().toUTCString(),
          }
          const range = /^bytes=(\d+)-(\d*)$/.exec(request.headers.get("range") ?? "")
          if (range && request.method === "GET") {
            const start = Number(range[1])
            const end = range[2] ? Math.min(Number(range[2]), object.body.length - 1) : object.body.length - 1
            return new Response(object.body.slice(start, end + 1), {
              status: 206,
              headers: { ...headers, "content-range": `bytes ${start}-${end}/${object.body.length}` },
            })
          }
          if (request.method === "HEAD")
            return new Response(null, {
              headers: { ...headers, "content-length": String(object.body.length) },
            })
          return new Response(object.body, { headers })
        }
      }
      return new Response(null, { status: 405 })
    },
  })
  return { url: `http://127.0.0.1:${server.port}`, objects, requests, stop: () => server.stop(true) }
}

describe("media, s3 storage", () => {
  test("the s3 driver needs a bucket and keys", () => {
    const config = loadConfig({ env: {}, overrides: { "media.driver": "s3", "media.s3_bucket": "b" } })
    expect(() => createMediaStorage(config)).toThrow("media.s3_access_key_id")
  })

  let s3: ReturnType<typeof fakeS3>
  let server: TestServer
  let alice: SignedUpUser
  beforeAll(async () => {
    s3 = fakeS3()
    server = await startTestServer({
      config: {
        "media.driver": "s3",
        "media.s3_bucket": "urge-test",
        "media.s3_region": "eu-test-1",
        "media.s3_endpoint": s3.url,
        "media.s3_access_key_id": "test-key",
        "media.s3_secret_access_key": "test-secret",
        "server.public_url": "https://chat.example.org",
      },
    })
    alice = await signUp(server)
  })
  afterAll(async () => {
    await server.stop()
    s3.stop()
  })

  test("three-step upload goes straight to the bucket through a presigned PUT", async () => {
    const bytes = await jpegWithGps()
    s3.requests.length = 0
    const presign = await server.api("POST", "/api/media/presigned-url", {
      token: alice.accessToken,
      body: { file_name: "gps.jpg", file_type: "image/jpeg", folder: "media" },
    })
    expect(presign.status).toBe(200)
    const key = presign.body.file_key
    expect(presign.body.file_url).toBe(`https://chat.example.org/api/media/files/${key}`)
    const upload = new URL(presign.body.upload_url)
    expect(upload.origin).toBe(s3.url)
    expect(upload.pathname).toBe(`/urge-test/incoming/${key}`)
    expect(upload.searchParams.get("X-Amz-Expires")).toBe("3600")
    expect(upload.searchParams.get("X-Amz-Algorithm")).toBe("AWS4-HMAC-SHA256")
    // Only the host is signed: the app's PUT may send any Content-Type (the type is sniffed later anyway).
    expect(upload.searchParams.get("X-Amz-SignedHeaders")).toBe("host")
    expect(s3.requests).toHaveLength(0)

    const put = await fetch(upload, { method: "PUT", headers: { "content-type": "image/jpeg" }, body: bytes })
    expect(put.status).toBe(200)
    const complete = await server.api("POST", "/api/media/complete-upload", {
      token: alice.accessToken,
      body: { file_key: key, file_name: "gps.jpg", file_size: 0 },
    })
    expect(complete.status).toBe(200)
    expect(complete.body).toMatchObject({
      file_type: "IMAGE",
      mime_type: "image/jpeg",
      width: 20,
      height: 40,
    })
    expect(complete.body.thumbnail_url).toBe(`https://chat.example.org/api/media/files/${key}.thumb.jpg`)

    // What the server asked of the bucket: every request signed (SigV4 header), path-style.
    const fromServer = s3.requests.slice(1)
    expect(fromServer.length).toBeGreaterThan(0)
    for (const r of fromServer)
      expect(r.headers.get("authorization")).toStartWith("AWS4-HMAC-SHA256 Credential=test-key/")
    const writes = fromServer.filter((r) => r.method === "PUT").map((r) => r.path)
    expect(writes).toEqual(expect.arrayContaining([`/urge-test/${key}`, `/urge-test/${key}.thumb.jpg`]))
    expect(fromServer.some((r) => r.method === "DELETE" && r.path === `/urge-test/incoming/${key}`)).toBe(
      true,
    )
    expect(s3.objects.has(`/urge-test/incoming/${key}`)).toBe(false)
    const stored = s3.objects.get(`/urge-test/${key}`)!
    expect(stored.type).toBe("image/jpeg")
    expect((await sharp(stored.body).metadata()).exif).toBeUndefined()
    expect(stored.body.length).toBe(complete.body.file_size)

    // The file URL (on this server) redirects to a presigned GET of the object.
    const file = await fetch(`${server.url}/api/media/files/${key}`, { redirect: "manual" })
    expect(file.status).toBe(302)
    const location = new URL(file.headers.get("location")!)
    expect(location.pathname).toBe(`/urge-test/${key}`)
    expect(location.searchParams.get("X-Amz-Signature")).toMatch(/^[0-9a-f]{64}$/)
    const fetched = await fetch(location)
    expect(Buffer.from(await fetched.arrayBuffer())).toEqual(Buffer.from(stored.body))

    // Deleting removes both objects.
    const deleted = await server.api("DELETE", `/api/media/${complete.body.id}`, { token: alice.accessToken })
    expect(deleted.status).toBe(200)
    expect(s3.objects.has(`/urge-test/${key}`)).toBe(false)
    expect(s3.objects.has(`/urge-test/${key}.thumb.jpg`)).toBe(false)
  })

  test("complete-upload without the object is 400; a video is moved, not re-encoded; multipart writes to the bucket", async () => {
    const presign = await server.api("POST", "/api/media/presigned-url", {
      token: alice.accessToken,
      body: { file_name: "v.mp4", file_type: "video/mp4" },
    })
    const missing = await server.api("POST", "/api/media/complete-upload", {
      token: alice.accessToken,
      body: { file_key: presign.body.file_key },
    })
    expect(missing.status).toBe(400)
    expect(missing.body.code).toBe("media.not_uploaded")

    await fetch(presign.body.upload_url, { method: "PUT", body: mp4() })
    const complete = await server.api("POST", "/api/media/complete-upload", {
      token: alice.accessToken,
      body: { file_key: presign.body.file_key, duration: 3 },
    })
    expect(complete.status).toBe(200)
    expect(complete.body).toMatchObject({
      file_type: "VIDEO",
      mime_type: "video/mp4",
      file_size: mp4().length,
      duration: 3,
    })
    const moved = s3.objects.get(`/urge-test/${presign.body.file_key}`)!
    expect(Buffer.from(moved.body)).toEqual(mp4())
    expect(moved.type).toBe("video/mp4")
    expect(s3.objects.has(`/urge-test/incoming/${presign.body.file_key}`)).toBe(false)

    const multi = await multipart(server, alice, form(pdf(), "d.pdf", "application/pdf"))
    expect(multi.status).toBe(200)
    const key = multi.body.file_url.split("/api/media/files/")[1]
    expect(Buffer.from(s3.objects.get(`/urge-test/${key}`)!.body)).toEqual(pdf())
  })
})
