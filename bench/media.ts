/**
 * Media upload and serving cost, through the real server in this process (client and server share the CPU
 * figures). Baseline from the same run: a PDF of the same size as the photo, which is stored as it is, so the
 * difference is the image work (decode, orientation, re-encode without metadata, thumbnail).
 *
 *   bun bench/media.ts [--runs 20]
 */
import { readFileSync } from "node:fs"
import sharp from "sharp"
import { startTestServer } from "../tests/helpers/server.ts"
import { signUp } from "../tests/helpers/users.ts"

const runsFlag = process.argv.indexOf("--runs")
const runs = runsFlag > 0 ? Number(process.argv[runsFlag + 1]) : 20

// A 12-megapixel phone photo stand-in: smooth gradient plus light noise, EXIF with orientation and GPS.
const photo = await sharp({
  create: {
    width: 4000,
    height: 3000,
    channels: 3,
    background: "#6688aa",
    noise: { type: "gaussian", mean: 0, sigma: 12 },
  },
})
  .withMetadata({ orientation: 6 })
  .withExifMerge({ IFD3: { GPSLatitudeRef: "N", GPSLatitude: "48/1 51/1 2400/100" } })
  .jpeg({ quality: 85 })
  .toBuffer()
const pdf = Buffer.concat([Buffer.from("%PDF-1.7\n"), Buffer.alloc(photo.length - 9, 0x20)])

const server = await startTestServer({ config: { "log.requests": false, "media.document_limit": "20MB" } })
const user = await signUp(server)

async function measure(label: string, op: () => Promise<void>) {
  await op() // warm-up
  const times: number[] = []
  const cpu = process.cpuUsage()
  for (let i = 0; i < runs; i++) {
    const start = performance.now()
    await op()
    times.push(performance.now() - start)
  }
  const used = process.cpuUsage(cpu)
  times.sort((a, b) => a - b)
  const pct = (p: number) => times[Math.min(times.length - 1, Math.floor(p * times.length))]!.toFixed(1)
  console.log(
    `${label.padEnd(44)} wall p50 ${pct(0.5)} ms  p95 ${pct(0.95)} ms   CPU ${((used.user + used.system) / 1000 / runs).toFixed(1)} ms/op`,
  )
}

const upload = (bytes: Uint8Array, name: string, type: string) => async () => {
  const form = new FormData()
  form.append("file", new File([bytes], name, { type }))
  const res = await fetch(server.url + "/api/media/upload", {
    method: "POST",
    headers: { authorization: `Bearer ${user.accessToken}` },
    body: form,
  })
  if (res.status !== 200) throw new Error(`upload ${res.status}: ${await res.text()}`)
  await res.arrayBuffer()
}

console.log(
  `photo ${(photo.length / 1024 / 1024).toFixed(2)} MiB JPEG 4000×3000; ${runs} runs each; load ${readFileSync("/proc/loadavg", "utf8").trim()}`,
)
await measure("upload PDF, same size (baseline)", upload(pdf, "a.pdf", "application/pdf"))
await measure("upload 12 MP JPEG (strip EXIF, rotate, thumb)", upload(photo, "p.jpg", "image/jpeg"))

const form = new FormData()
form.append("file", new File([pdf], "a.pdf", { type: "application/pdf" }))
const media = (await (
  await fetch(server.url + "/api/media/upload", {
    method: "POST",
    headers: { authorization: `Bearer ${user.accessToken}` },
    body: form,
  })
).json()) as { file_url: string }
await measure(`GET whole file (${(pdf.length / 1024 / 1024).toFixed(1)} MiB)`, async () => {
  await (await fetch(media.file_url)).arrayBuffer()
})
await measure("GET 64 KiB range", async () => {
  await (await fetch(media.file_url, { headers: { range: "bytes=65536-131071" } })).arrayBuffer()
})
console.log(`load after: ${readFileSync("/proc/loadavg", "utf8").trim()}`)
await server.stop()
