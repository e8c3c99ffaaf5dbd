import { Database } from "bun:sqlite"
import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test"
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { runCli } from "./helpers/cli.ts"
import { directChat, history, send } from "./helpers/messaging.ts"
import { createTestDatabase, dialectUnderTest, startTestServer, type TestServer } from "./helpers/server.ts"
import { signUp } from "./helpers/users.ts"

/**
 * `urge backup create | verify | restore | list` against the dialect under test, through the CLI, with a real
 * server serving (and writing) meanwhile. On Postgres the client tools must be on PATH; CI has them, and a CI
 * run without them fails here instead of skipping.
 */

setDefaultTimeout(60_000)
const postgres = dialectUnderTest === "postgres"
const toolsMissing = postgres && !Bun.which("pg_dump")
if (toolsMissing && process.env.CI)
  throw new Error(
    "CI runs the Postgres backup tests: install the PostgreSQL client tools (pg_dump, pg_restore, psql)",
  )
if (toolsMissing) console.warn("backup tests skipped on Postgres: pg_dump is not on PATH")
const maybe = toolsMissing ? test.skip : test

const work = mkdtempSync(join(tmpdir(), "urge-backup-"))
const cleanups: (() => Promise<void> | void)[] = [() => rmSync(work, { recursive: true, force: true })]
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup()
})

/** A data directory and a database of the dialect under test that outlive a server on them. */
async function place(options: { password?: string } = {}) {
  const dataDir = mkdtempSync(join(work, "data-"))
  let databaseUrl = ""
  if (postgres) {
    const database = await createTestDatabase()
    cleanups.push(database.drop)
    const url = new URL(database.url)
    // Trust authentication accepts any password: enough to see that none is ever printed.
    if (options.password) url.password = options.password
    databaseUrl = url.toString()
  }
  const env = { URGE_DATA_DIR: dataDir, URGE_DATABASE_URL: databaseUrl }
  return { dataDir, databaseUrl, env }
}

type Place = Awaited<ReturnType<typeof place>>

/** A server on a place, signing with the JWT secret generated in its data directory (as in production). */
async function serveOn(where: Place, config: Record<string, unknown> = {}): Promise<TestServer> {
  const server = await startTestServer({
    dataDir: where.dataDir,
    databaseUrl: where.databaseUrl,
    config: { "auth.jwt_secret": "", ...config },
  })
  cleanups.push(() => server.stop())
  return server
}

const cli = (where: Place, ...args: string[]) => runCli(["backup", ...args], where.env)

/** Runs the CLI as its own process: exit status and stderr, as an operator's script sees them. */
async function spawnCli(args: string[], env: Record<string, string>) {
  const proc = Bun.spawn([process.execPath, join(import.meta.dir, "..", "cli", "main.ts"), ...args], {
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", ...env },
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

const extension = postgres ? "pgdump" : "db"

describe(`urge backup (${dialectUnderTest})`, () => {
  maybe(
    "a backup taken while the server writes restores into a fresh place: users, messages, sessions",
    async () => {
      const source = await place({ password: "hunter2-secret" })
      const server = await serveOn(source)
      const ada = await signUp(server, { displayName: "Ada" })
      const bo = await signUp(server, { displayName: "Bo" })
      const chat = await directChat(server, ada, bo)
      const before = [] as string[]
      for (let i = 0; i < 5; i++) before.push((await send(server, ada, chat, `before ${i}`)).content)

      // One writer keeps sending, acknowledged message by message, while the backup is taken.
      const acknowledged: string[] = [...before]
      let writing = true
      const writer = (async () => {
        for (let i = 0; writing; i++)
          acknowledged.push((await send(server, i % 2 ? ada : bo, chat, `during ${i}`)).content)
      })()
      const file = join(work, `during.${extension}`)
      // Its own process, as an operator runs it (in this one, SQLite's VACUUM INTO would pause the writer).
      const created = await spawnCli(["backup", "create", "--out", file], source.env)
      writing = false
      await writer
      expect(created).toMatchObject({ code: 0, stderr: "" })
      expect(created.stdout).toContain(`created ${file} (`)
      expect(created.stdout).toContain(`jwt secret: ${file}.jwt-secret`)
      expect(created.stdout).not.toContain("hunter2")
      expect(statSync(file).mode & 0o777).toBe(0o600)
      expect(statSync(`${file}.jwt-secret`).mode & 0o777).toBe(0o600)
      const verified = await cli(source, "verify", file)
      expect(verified).toContain(`ok: ${file}`)
      expect(verified).toMatch(/schema: \d+ migrations, latest \S+ \(current\)/)

      const target = await place()
      const restored = await cli(target, "restore", file)
      expect(restored).toContain(`restored ${file} into`)
      expect(restored).toContain("there was no previous database")
      expect(restored).toContain(`jwt secret: restored to ${join(target.dataDir, "jwt-secret")}`)
      expect(readFileSync(join(target.dataDir, "jwt-secret"), "utf8")).toBe(
        readFileSync(join(source.dataDir, "jwt-secret"), "utf8"),
      )

      const copy = await serveOn(target)
      // The same secret: tokens issued before the backup still work, sessions and refresh tokens included.
      const me = await copy.api("GET", "/api/users/me", { token: ada.accessToken })
      expect(me).toMatchObject({ status: 200, body: { id: ada.user.id, display_name: "Ada" } })
      const refreshed = await copy.api("POST", "/api/auth/refresh", {
        body: { refresh_token: bo.refreshToken },
      })
      expect(refreshed.status).toBe(200)
      // A consistent snapshot: everything acknowledged before it started, then an unbroken run of what followed.
      const messages = (await history(copy, bo, chat)).map((m) => m.content)
      expect(messages.length).toBeGreaterThanOrEqual(before.length)
      expect(messages).toEqual(acknowledged.slice(0, messages.length))
    },
  )

  maybe("uploaded media is kept beside the backup and comes back with the restore", async () => {
    const source = await place()
    const server = await serveOn(source)
    const ada = await signUp(server, { displayName: "Ada" })
    const bytes = Buffer.from(`%PDF-1.7\n${"x".repeat(3000)}\n%%EOF\n`)
    const data = new FormData()
    data.append("file", new File([bytes], "notes.pdf", { type: "application/pdf" }))
    const uploaded = await fetch(`${server.url}/api/media/upload`, {
      method: "POST",
      headers: { authorization: `Bearer ${ada.accessToken}` },
      body: data,
    })
    expect(uploaded.status).toBe(200)
    const path = new URL(((await uploaded.json()) as { file_url: string }).file_url).pathname
    const file = join(work, `media.${extension}`)
    const created = await cli(source, "create", "--out", file)
    expect(created).toContain(`media: 1 file(s) in ${file}.media (hard links)`)

    const target = await place()
    expect(await cli(target, "restore", file)).toContain(
      `media: 1 file(s) restored to ${join(target.dataDir, "media")}`,
    )
    const copy = await serveOn(target)
    const served = await fetch(copy.url + path)
    expect(served.status).toBe(200)
    expect(Buffer.from(await served.arrayBuffer()).equals(bytes)).toBe(true)
  })

  maybe(
    "restore is refused while a server uses the database; once it stops, the previous one is kept",
    async () => {
      const where = await place({ password: "hunter2-secret" })
      // Postgres: the LISTEN connection of the realtime bus is always open (pooled ones close after 10 s idle).
      const server = await serveOn(where, postgres ? { "realtime.bus": "postgres" } : {})
      const ada = await signUp(server, { displayName: "Ada" })
      const bo = await signUp(server, { displayName: "Bo" })
      const chat = await directChat(server, ada, bo)
      await send(server, ada, chat, "kept")
      const file = join(work, `refusal.${extension}`)
      await cli(where, "create", "--out", file)
      await send(server, ada, chat, "after the backup")

      const refusal = cli(where, "restore", file)
      await expect(refusal).rejects.toThrow(
        "(a running urge serve?): stop every server using it, then restore",
      )
      await expect(refusal).rejects.not.toThrow("hunter2")
      // Untouched, still serving.
      expect((await history(server, ada, chat)).map((m) => m.content)).toEqual(["kept", "after the backup"])

      await server.stop()
      const restored = await cli(where, "restore", file)
      const previous = /previous database kept at (\S+)/.exec(restored)?.[1]
      expect(previous).toBeDefined()
      expect(existsSync(previous!)).toBe(true)
      expect(restored).toContain(`jwt secret: ${join(where.dataDir, "jwt-secret")} unchanged`)
      expect(restored).not.toContain("hunter2")
      if (!postgres) expect(previous).toStartWith(join(where.dataDir, "urge.db.before-restore-"))
      else expect(previous).toEndWith(".pgdump")

      const again = await serveOn(where)
      expect((await history(again, ada, chat)).map((m) => m.content)).toEqual(["kept"])
      // What was replaced is itself a valid backup of the database as it was.
      expect(await cli(where, "verify", previous!)).toContain("ok: ")
    },
  )

  maybe(
    "a damaged backup fails verify (exit 1, a clear message) and restore leaves the database alone",
    async () => {
      const where = await place()
      const server = await serveOn(where)
      await signUp(server, { displayName: "Ada" })
      const file = join(work, `sound.${extension}`)
      await cli(where, "create", "--out", file)
      await server.stop()
      const bytes = readFileSync(file)

      const truncated = join(work, `truncated.${extension}`)
      writeFileSync(truncated, bytes.subarray(0, Math.floor(bytes.length / 2)))
      const damaged = join(work, `damaged.${extension}`)
      const garbled = Buffer.from(bytes)
      // Past the header: SQLite's second page on (its b-trees), the archive's compressed data.
      for (let i = 4096; i < garbled.length - 64; i += 97) garbled[i] = garbled[i]! ^ 0x5a
      writeFileSync(damaged, garbled)
      const notBackup = join(work, "notes.txt")
      writeFileSync(notBackup, "just some text\n")

      for (const bad of [truncated, damaged]) {
        const result = await spawnCli(["backup", "verify", bad], where.env)
        expect(result.code).toBe(1)
        expect(result.stderr).toStartWith(`error: ${bad} failed verification: `)
        await expect(cli(where, "restore", bad)).rejects.toThrow(`${bad} failed verification: `)
      }
      const result = await spawnCli(["backup", "verify", notBackup], where.env)
      expect(result).toMatchObject({ code: 1, stdout: "" })
      expect(result.stderr).toBe(
        `error: ${notBackup} is not a URGE backup: neither a SQLite database nor a pg_dump custom-format archive\n`,
      )
      // The database is as it was, with nothing left aside by the refused restores.
      expect(readdirSync(where.dataDir).filter((name) => name.includes("before-restore"))).toEqual([])
      const again = await serveOn(where)
      const users = await runCli(["users", "list"], where.env)
      expect(users).toContain("Ada")
      await again.stop()
    },
  )

  maybe(
    "the default place: <data.dir>/backups, newest first in list, backup.keep prunes the oldest",
    async () => {
      const where = await place()
      const server = await serveOn(where)
      await signUp(server)
      const env = { ...where.env, URGE_BACKUP_KEEP: "2" }
      const made: string[] = []
      for (let i = 0; i < 3; i++) {
        const out = await runCli(["backup", "create"], env)
        made.push(/^created (\S+) /.exec(out)![1]!)
        if (i === 2) expect(out).toContain(`deleted ${made[0]} (backup.keep = 2)`)
      }
      const dir = join(where.dataDir, "backups")
      for (const file of made)
        expect(file).toMatch(
          new RegExp(`^${dir}/urge-\\d{4}-\\d\\d-\\d\\dT[\\d-]+\\.\\d{3}Z\\.${extension}$`),
        )
      expect(statSync(dir).mode & 0o777).toBe(0o700)
      const listed = (await runCli(["backup", "list"], env)).split("\n")
      expect(listed.map((line) => line.split("\t")[0])).toEqual([made[2], made[1]])
      expect(listed[0]).toEndWith("with jwt-secret")
      expect(existsSync(`${made[0]}.jwt-secret`)).toBe(false)
      // An explicit --out never overwrites.
      await expect(runCli(["backup", "create", "--out", made[2]!], env)).rejects.toThrow(
        `${made[2]} already exists; choose another --out`,
      )
      // Restoring the oldest kept backup: retention never deletes it on the way (Postgres dumps the
      // replaced contents to the backups dir first).
      await server.stop()
      expect(await runCli(["backup", "restore", made[1]!], env)).toContain(`restored ${made[1]} into`)
      expect(existsSync(made[1]!)).toBe(true)
    },
  )

  test.if(!postgres)(
    "SQLite: nothing to back up yet, and a backup of the other dialect is refused",
    async () => {
      const where = await place()
      await expect(cli(where, "create")).rejects.toThrow(`no database at ${join(where.dataDir, "urge.db")}`)
      const archive = join(work, "other.pgdump")
      writeFileSync(archive, "PGDMP\u0001\u000e\u0000")
      await expect(cli(where, "restore", archive)).rejects.toThrow(
        "is a Postgres backup but the configured database is SQLite",
      )
      // The refusals created nothing.
      expect(readdirSync(where.dataDir)).toEqual([])
    },
  )

  test.if(!postgres)("SQLite: a backup is a plain SQLite file (the sqlite3 shell opens it)", async () => {
    const where = await place()
    const server = await serveOn(where)
    const ada = await signUp(server, { displayName: "Ada" })
    const file = join(work, "plain.db")
    await cli(where, "create", "--out", file)
    const db = new Database(file, { readonly: true })
    try {
      expect(db.query("pragma journal_mode").get()).toEqual({ journal_mode: "delete" })
      expect(db.query("select display_name from users where id = ?").get(ada.user.id)).toEqual({
        display_name: "Ada",
      })
    } finally {
      db.close()
    }
  })

  test.if(postgres)("Postgres: without the client tools, a clear error naming them", async () => {
    const where = await place({ password: "hunter2-secret" })
    const result = await spawnCli(["backup", "create"], { ...where.env, PATH: "/nonexistent" })
    expect(result.code).toBe(1)
    expect(result.stderr).toContain(
      "pg_dump not found on PATH: Postgres backups need the PostgreSQL client tools",
    )
    expect(result.stderr).not.toContain("hunter2")
  })
})
