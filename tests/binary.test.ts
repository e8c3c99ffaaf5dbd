import { Database } from "bun:sqlite"
import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from "node:fs"
import { tmpdir } from "node:os"
import { join, resolve, sep } from "node:path"
import { findSharpNative } from "../build.ts"
import { migrations } from "../migrations/index.ts"
import pkg from "../package.json" with { type: "json" }
import { createTestDatabase, testPostgresUrl } from "./helpers/server.ts"

/**
 * The single binary, as an operator gets it: built once by build.ts, then run from an empty temp directory with
 * a clean environment and, where the system allows a private mount namespace, with the source tree and its
 * node_modules hidden (a binary that quietly loads files from the build tree would pass otherwise).
 */

const repo = resolve(import.meta.dir, "..")
const work = mkdtempSync(join(tmpdir(), "urge-binary-"))
const binary = join(work, "urge")
const cleanups: (() => Promise<void> | void)[] = [() => rmSync(work, { recursive: true, force: true })]

/** Directories a run must not see: the checkout and (when it is a link elsewhere) the real node_modules. */
const buildTree = [realpathSync(repo), realpathSync(join(repo, "node_modules"))].filter(
  // node_modules inside the checkout is hidden with it (and could not be mounted over once the checkout is).
  (dir, i, all) => all.indexOf(dir) === i && !all.some((other) => dir.startsWith(other + sep)),
)

/** How to hide the build tree: a private mount namespace with empty tmpfs over it, as root or in a user namespace. */
const isolation: string[] | null = (() => {
  for (const flags of [["-m"], ["-r", "-m"]]) {
    const probe = Bun.spawnSync(["unshare", ...flags, "--propagation", "private", "true"], {
      stdout: "ignore",
      stderr: "ignore",
    })
    if (probe.exitCode === 0) return flags
  }
  return null
})()

/** The command line that runs the binary with the build tree hidden (when the system allows it). */
function isolated(args: string[], noexec: string[] = []): string[] {
  if (!isolation) return [binary, ...args]
  const mounts = [
    ...buildTree.map((dir) => `mount -t tmpfs -o size=1m none '${dir}'`),
    // Directories where nothing may be executed, as on hardened servers (/tmp, sometimes /home).
    ...noexec.map((dir) => `mount -t tmpfs -o noexec,size=64m none '${dir}'`),
  ].join(" && ")
  // `exec` keeps one process: signals sent to it reach the binary itself.
  return [
    "unshare",
    ...isolation,
    "--propagation",
    "private",
    "sh",
    "-c",
    `${mounts} && exec "$@"`,
    "sh",
    binary,
    ...args,
  ]
}

/** An empty working directory, a private HOME (the native cache goes to ~/.cache/urge) unless one is given, and nothing else. */
function freshPlace(env: Record<string, string> = {}, sharedHome?: string) {
  const cwd = mkdtempSync(join(work, "run-"))
  const home = sharedHome ?? join(cwd, "home")
  mkdirSync(home, { recursive: true })
  mkdirSync(join(cwd, "tmp"))
  return {
    cwd,
    home,
    env: { PATH: "/usr/local/bin:/usr/bin:/bin", HOME: home, TMPDIR: join(cwd, "tmp"), ...env },
  }
}

/** Environment pointing at a fresh database of the dialect under test (SQLite in the working directory by default). */
async function databaseEnv(): Promise<Record<string, string>> {
  if (!testPostgresUrl) return {}
  const database = await createTestDatabase()
  cleanups.push(database.drop)
  return { URGE_DATABASE_URL: database.url }
}

/** Runs the binary to completion. */
async function run(args: string[], place: ReturnType<typeof freshPlace>, noexec: string[] = []) {
  const proc = Bun.spawn(isolated(args, noexec), {
    cwd: place.cwd,
    env: place.env,
    stdout: "pipe",
    stderr: "pipe",
  })
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ])
  return { stdout, stderr, code }
}

/** A running `urge serve`: its log lines as they come, and its base URL from the "listening" line. */
async function serve(place: ReturnType<typeof freshPlace>, extraArgs: string[] = []) {
  const proc = Bun.spawn(isolated(["serve", "--host", "127.0.0.1", "--port", "0", ...extraArgs]), {
    cwd: place.cwd,
    env: { URGE_SERVER_SHUTDOWN_TIMEOUT: "5", ...place.env },
    stdout: "pipe",
    stderr: "pipe",
  })
  const lines: Record<string, any>[] = []
  const stderr = new Response(proc.stderr).text()
  const reading = (async () => {
    let buffer = ""
    const decoder = new TextDecoder()
    for await (const chunk of proc.stdout) {
      buffer += decoder.decode(chunk, { stream: true })
      let newline: number
      while ((newline = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, newline)
        buffer = buffer.slice(newline + 1)
        lines.push(JSON.parse(line))
      }
    }
  })()
  /** Waits for a log line with this message (fails if the process exits first). */
  const waitForLog = async (msg: string, timeoutMs = 20_000) => {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const line = lines.find((l) => l.msg === msg)
      if (line) return line
      if (proc.exitCode !== null || Date.now() > deadline) {
        const exit = proc.exitCode
        proc.kill("SIGKILL")
        throw new Error(`no "${msg}" log line; exit ${exit}; stderr: ${await stderr}`)
      }
      await Bun.sleep(10)
    }
  }
  /** Sends a signal and waits for the exit (bounded: shutdown_timeout is 5s here). */
  const stop = async (signal: "SIGTERM" | "SIGINT") => {
    proc.kill(signal)
    const code = await Promise.race([proc.exited, Bun.sleep(15_000).then(() => "still running")])
    if (code === "still running") proc.kill("SIGKILL")
    await reading
    return code
  }
  cleanups.push(() => void proc.kill("SIGKILL"))
  const url: string = (await waitForLog("listening")).url
  return { proc, url, lines, waitForLog, stop }
}

beforeAll(async () => {
  if (!isolation)
    console.warn(
      "binary test: no private mount namespace here (unshare not permitted); the build tree stays visible to the binary",
    )
  const build = Bun.spawnSync([process.execPath, join(repo, "build.ts"), "--outfile", binary], {
    cwd: repo,
    stdout: "pipe",
    stderr: "pipe",
  })
  if (build.exitCode !== 0) throw new Error(`build failed:\n${build.stdout}\n${build.stderr}`)
}, 300_000)

afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup()
})

/** Signs a user up through the binary's API (the code comes from its console SMS log) and returns the token. */
let phones = 0
async function signUpThrough(server: Awaited<ReturnType<typeof serve>>): Promise<string> {
  const phone = `+1555${String((Date.now() + phones++) % 100_000_000).padStart(8, "0")}`
  const post = (path: string, body: unknown, token?: string) =>
    fetch(server.url + path, {
      method: "POST",
      headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify(body),
    }).then((r) => r.json() as Promise<any>)
  await post("/api/auth/send-verification", { phone_number: phone })
  const sms = server.lines.findLast((l) => l.msg === "sms (console driver)" && l.to === phone)
  const code = /\b(\d{6})\b/.exec(sms?.text ?? "")?.[1]
  const registered = await post("/api/auth/register", { phone_number: phone, display_name: "Binary" })
  const loggedIn = await post(
    "/api/auth/login",
    { phone_number: phone, verification_code: code },
    registered.access_token,
  )
  return loggedIn.access_token
}

/** Calls the binary's API as `token`; returns the status and body. */
async function call(server: { url: string }, token: string, method: string, path: string, body?: unknown) {
  const res = await fetch(server.url + path, {
    method,
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  return { status: res.status, body: (await res.json()) as any }
}

/** The contents the binary's search finds for `word`, as `token`. */
const searchThrough = async (server: { url: string }, token: string, word: string) =>
  (await call(server, token, "GET", `/api/messages/search?q=${word}`)).body.messages.map(
    (m: any) => m.content,
  )

/** Two users of the binary, a message between them; returns the reader's token. */
async function messageThrough(server: Awaited<ReturnType<typeof serve>>, content: string): Promise<string> {
  const [a, b] = [await signUpThrough(server), await signUpThrough(server)]
  const other = (await call(server, b, "GET", "/api/auth/me")).body
  const chat = await call(server, a, "POST", "/api/conversations", {
    type: "DIRECT",
    participant_ids: [other.id ?? other.user?.id],
  })
  expect(chat.status).toBe(200)
  const sent = await call(server, a, "POST", "/api/messages", { conversation_id: chat.body.id, content })
  expect(sent.status).toBe(200)
  return b
}

/** Uploads a JPEG carrying EXIF (orientation 6) through multipart; returns the status and body. */
async function uploadJpeg(server: Awaited<ReturnType<typeof serve>>, token: string) {
  const { default: sharp } = await import("sharp")
  const jpeg = await sharp({ create: { width: 40, height: 20, channels: 3, background: "#3366ff" } })
    .withMetadata({ orientation: 6 })
    .jpeg()
    .toBuffer()
  const form = new FormData()
  form.append("file", new File([jpeg], "photo.jpg", { type: "image/jpeg" }))
  const res = await fetch(`${server.url}/api/media/upload`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}` },
    body: form,
  })
  return { status: res.status, body: (await res.json()) as any }
}

/** Per-test bound: each test starts the binary a few times, which a busy CI machine can make slow. */
const slow = 60_000
const migrationNames = Object.keys(migrations)
const sharpPkg = JSON.parse(readFileSync(join(repo, "node_modules", "sharp", "package.json"), "utf8")) as {
  version: string
}
/** The libvips version the build embeds: the file name of the library (libvips-cpp.so.8.18.7). */
const libvipsVersion = /\.so\.(\d+\.\d+\.\d+)$/.exec(findSharpNative()?.libraries[0] ?? "")?.[1] ?? "none"
const sharpLine = `images: sharp ${sharpPkg.version} (libvips ${libvipsVersion})`

describe("the binary, from an empty directory with the build tree out of reach", () => {
  test(
    "the build tree really is hidden from it",
    async () => {
      if (!isolation) return
      const place = freshPlace()
      const proc = Bun.spawnSync(
        [
          "unshare",
          ...isolation,
          "--propagation",
          "private",
          "sh",
          "-c",
          `${buildTree.map((d) => `mount -t tmpfs none '${d}'`).join(" && ")} && ls -A '${repo}'`,
        ],
        { cwd: place.cwd, env: place.env },
      )
      expect(proc.exitCode).toBe(0)
      expect(proc.stdout.toString().trim()).toBe("")
    },
    slow,
  )

  test(
    "--version and --help",
    async () => {
      const place = freshPlace()
      const version = await run(["--version"], place)
      expect(version).toMatchObject({ code: 0, stdout: `${pkg.version}\n` })
      const help = await run(["--help"], place)
      expect(help.code).toBe(0)
      for (const command of ["serve", "migrate", "config", "doctor", "users", "backup"])
        expect(help.stdout).toContain(command)
      // Neither touched the native cache: sharp loads only when images are needed.
      expect(existsSync(join(place.home, ".cache"))).toBe(false)
    },
    slow,
  )

  test(
    "migrate status, then up, on a fresh database",
    async () => {
      const place = freshPlace(await databaseEnv())
      const before = await run(["migrate", "status"], place)
      expect(before.code).toBe(0)
      expect(before.stdout).toContain(`database: ${testPostgresUrl ? "postgres" : "sqlite"}`)
      for (const name of migrationNames) expect(before.stdout).toContain(`pending  ${name}`)
      const up = await run(["migrate", "up"], place)
      expect(up.code).toBe(0)
      for (const name of migrationNames) expect(up.stdout).toContain(`applied ${name}`)
    },
    slow,
  )

  test(
    "doctor: database reachable, sharp resizes an image; the native files land in ~/.cache/urge",
    async () => {
      const place = freshPlace(await databaseEnv())
      const first = await run(["doctor"], place)
      expect(first.stderr).toBe("")
      expect(first.code).toBe(0)
      expect(first.stdout).toContain(`urge ${pkg.version}`)
      expect(first.stdout).toMatch(/database: ok \((sqlite|postgres) /)
      expect(first.stdout).toContain(sharpLine)
      const cache = join(place.home, ".cache", "urge")
      const [extracted] = readdirSync(cache)
      expect(extracted).toStartWith(`sharp-${sharpPkg.version}-`)
      // A second start reuses the extracted files.
      const second = await run(["doctor"], place)
      expect(second.stdout).toContain(sharpLine)
      expect(readdirSync(cache)).toEqual([extracted!])
    },
    slow,
  )

  test(
    "doctor: concurrent first starts share one cache safely",
    async () => {
      // One HOME (so one native cache), separate data directories: only the extraction is shared.
      const place = freshPlace()
      const others = [1, 2, 3].map(() => freshPlace({}, place.home))
      const results = await Promise.all(others.map((other) => run(["doctor"], other)))
      for (const result of results) {
        expect(result).toMatchObject({ code: 0, stderr: "" })
        expect(result.stdout).toContain(sharpLine)
      }
      const cache = join(place.home, ".cache", "urge")
      const leftovers = [...new Bun.Glob("**/*.tmp").scanSync({ cwd: cache, dot: true })]
      expect(leftovers).toEqual([])
    },
    slow,
  )

  test(
    "doctor: with no usable home cache, the native files go under the data directory",
    async () => {
      const place = freshPlace({ HOME: "/dev/null/no-home" })
      const result = await run(["doctor"], place)
      expect(result.code).toBe(0)
      expect(result.stdout).toContain(sharpLine)
      expect(readdirSync(join(place.cwd, "data", "cache"))[0]).toStartWith(`sharp-${sharpPkg.version}-`)
    },
    slow,
  )

  test(
    "doctor: a home cache on a noexec mount is passed over for the data directory",
    async () => {
      if (!isolation) return
      const place = freshPlace()
      const result = await run(["doctor"], place, [place.home])
      expect(result.code).toBe(0)
      expect(result.stdout).toContain(sharpLine)
      expect(readdirSync(join(place.cwd, "data", "cache"))[0]).toStartWith(`sharp-${sharpPkg.version}-`)
    },
    slow,
  )

  test(
    "doctor refuses: unreachable database, images impossible → exit 1 naming both",
    async () => {
      // Every cache candidate unusable: no home, no tmp, and <data>/cache is a file.
      const place = freshPlace({
        HOME: "/dev/null/no-home",
        URGE_DATABASE_URL: "postgres://postgres@127.0.0.1:1/nothing",
      })
      place.env.TMPDIR = "/dev/null/no-tmp"
      mkdirSync(join(place.cwd, "data"))
      writeFileSync(join(place.cwd, "data", "cache"), "not a directory")
      const result = await run(["doctor"], place)
      expect(result.code).toBe(1)
      expect(result.stdout).toContain("database: unreachable")
      expect(result.stdout).toContain("images: unavailable (cannot extract")
      expect(result.stderr).toContain("error: failed checks: database, images")
    },
    slow,
  )

  test(
    "serve: /health, OpenAPI, docs assets from the binary, sharp loaded; SIGTERM exits 0",
    async () => {
      const place = freshPlace(await databaseEnv())
      const server = await serve(place)
      const health = await fetch(`${server.url}/health`)
      expect(health.status).toBe(200)
      expect(await health.json()).toMatchObject({ status: "healthy", database: "ok", version: pkg.version })

      const spec = (await (await fetch(`${server.url}/docs/json`)).json()) as any
      expect(spec.openapi).toMatch(/^3\./)
      expect(spec.info).toMatchObject({ title: "URGE server", version: pkg.version })
      expect(spec.paths["/health"]).toBeDefined()

      const page = await fetch(`${server.url}/docs`)
      expect(page.status).toBe(200)
      const html = await page.text()
      expect(html).not.toMatch(/(?:src|href)="(?:https?:)?\/\//)
      const sources = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!)
      expect(sources).toContain("/docs/assets/swagger-ui-bundle.js")
      for (const src of sources) {
        const asset = await fetch(server.url + src)
        expect(asset.status).toBe(200)
        expect((await asset.arrayBuffer()).byteLength).toBeGreaterThan(1000)
      }

      const images = await server.waitForLog("images: sharp loaded")
      expect(images).toMatchObject({ sharp: sharpPkg.version, libvips: libvipsVersion })

      // An image upload re-encodes with the embedded sharp: metadata gone, orientation applied, a thumbnail.
      const upload = await uploadJpeg(server, await signUpThrough(server))
      expect(upload.status).toBe(200)
      expect(upload.body).toMatchObject({ mime_type: "image/jpeg", width: 20, height: 40 })
      const thumbnail = await fetch(upload.body.thumbnail_url)
      expect(thumbnail.headers.get("content-type")).toBe("image/jpeg")
      const { default: sharp } = await import("sharp")
      const stored = new Uint8Array(await (await fetch(upload.body.file_url)).arrayBuffer())
      expect((await sharp(stored).metadata()).exif).toBeUndefined()

      expect(await server.stop("SIGTERM")).toBe(0)
      expect(server.lines.at(-1)?.msg).toBe("stopped")
    },
    slow,
  )

  test(
    "backup: created while serving, verified; restore refused while serving, done once stopped",
    async () => {
      const place = freshPlace(await databaseEnv())
      const server = await serve(place)
      // Search from the binary (on SQLite its index is written by a worker thread, a blob in the binary).
      const reader = await messageThrough(server, "binary pangolin")
      expect(await searchThrough(server, reader, "pangolin")).toEqual(["binary pangolin"])
      const created = await run(["backup", "create"], place)
      expect(created).toMatchObject({ code: 0, stderr: "" })
      const file = /^created (\S+) /.exec(created.stdout)?.[1] ?? ""
      expect(file).toStartWith(join(place.cwd, "data", "backups", "urge-"))
      expect(created.stdout).toContain(`jwt secret: ${file}.jwt-secret`)

      const verified = await run(["backup", "verify", file], place)
      expect(verified).toMatchObject({ code: 0, stderr: "" })
      expect(verified.stdout).toContain(`schema: ${migrationNames.length} migrations`)

      // A separate process holds the database: the refusal sees a real server, not one in its own process.
      // (/health queries the database: on Postgres the server's pool then has a connection open for 10 s.)
      expect((await fetch(`${server.url}/health`)).status).toBe(200)
      const refused = await run(["backup", "restore", file], place)
      expect(refused.code).toBe(1)
      expect(refused.stderr).toContain("(a running urge serve?): stop every server using it, then restore")

      expect(await server.stop("SIGTERM")).toBe(0)
      const restored = await run(["backup", "restore", file], place)
      expect(restored).toMatchObject({ code: 0, stderr: "" })
      expect(restored.stdout).toContain("previous database kept at ")
      const listed = await run(["backup", "list"], place)
      expect(listed.stdout).toContain(file)
      const again = await serve(place)
      expect((await fetch(`${again.url}/health`)).status).toBe(200)
      // The restore removed the search index (derived from the old messages); it is rebuilt from the restored ones.
      expect(await searchThrough(again, reader, "pangolin")).toEqual(["binary pangolin"])
      expect(await again.stop("SIGTERM")).toBe(0)
    },
    slow,
  )

  test(
    "serve still starts when images are impossible, and says so",
    async () => {
      const place = freshPlace({ HOME: "/dev/null/no-home" })
      place.env.TMPDIR = "/dev/null/no-tmp"
      mkdirSync(join(place.cwd, "data"))
      writeFileSync(join(place.cwd, "data", "cache"), "not a directory")
      const server = await serve(place)
      expect((await fetch(`${server.url}/health`)).status).toBe(200)
      const warning = await server.waitForLog("images unavailable: no thumbnails or image resizing")
      expect(warning.level).toBe("warn")
      expect(warning.reason).toContain("cannot extract")
      // Images cannot be cleaned of their metadata here, so they are refused (other files still work).
      const upload = await uploadJpeg(server, await signUpThrough(server))
      expect(upload.status).toBe(503)
      expect(upload.body.code).toBe("media.images_unavailable")
      expect(await server.stop("SIGTERM")).toBe(0)
    },
    slow,
  )
})

describe("graceful shutdown of the binary", () => {
  test(
    "SIGINT exits 0, logs stopped, and leaves SQLite closed cleanly (WAL checkpointed)",
    async () => {
      const place = freshPlace()
      const server = await serve(place)
      expect((await fetch(`${server.url}/health`)).status).toBe(200)
      const dbFile = join(place.cwd, "data", "urge.db")
      // While serving, SQLite writes through the WAL.
      expect(existsSync(`${dbFile}-wal`)).toBe(true)
      expect(await server.stop("SIGINT")).toBe(0)
      expect(server.lines.at(-1)?.msg).toBe("stopped")
      // The last connection closed properly: SQLite checkpointed the WAL into the database and removed it.
      expect(existsSync(`${dbFile}-wal`)).toBe(false)
      const db = new Database(dbFile, { readonly: true })
      try {
        expect(db.query("pragma integrity_check").get()).toEqual({ integrity_check: "ok" })
        const applied = db.query("select name from kysely_migration order by name").all() as {
          name: string
        }[]
        expect(applied.map((m) => m.name)).toEqual(migrationNames)
      } finally {
        db.close()
      }
    },
    slow,
  )
})
