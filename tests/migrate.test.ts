import { afterAll, describe, expect, test, setDefaultTimeout } from "bun:test"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { migrations } from "../migrations/index.ts"
import { runCli } from "./helpers/cli.ts"
import { createTestDatabase, testPostgresUrl } from "./helpers/server.ts"

// Real servers, real databases, child processes: generous on a loaded CI machine.
setDefaultTimeout(30_000)

const cleanups: (() => Promise<void>)[] = []
afterAll(async () => {
  for (const c of cleanups) await c()
})

/** Environment for a CLI run against a fresh database of the dialect under test. */
async function freshEnv(): Promise<Record<string, string>> {
  const env: Record<string, string> = {
    URGE_DATA_DIR: mkdtempSync(join(tmpdir(), "urge-migrate-")),
    URGE_AUTH_JWT_SECRET: "x",
  }
  if (testPostgresUrl) {
    const database = await createTestDatabase()
    cleanups.push(database.drop)
    env.URGE_DATABASE_URL = database.url
  }
  return env
}

const names = Object.keys(migrations)

describe("urge migrate", () => {
  test("status, up, down, up again", async () => {
    const env = await freshEnv()
    const before = await runCli(["migrate", "status"], env)
    for (const name of names) expect(before).toContain(`pending  ${name}`)
    const up = await runCli(["migrate", "up"], env)
    for (const name of names) expect(up).toContain(`applied ${name}`)
    expect(await runCli(["migrate", "up"], env)).toBe("up to date")
    const after = await runCli(["migrate", "status"], env)
    for (const name of names) expect(after).toMatch(new RegExp(`applied  ${name}  \\d{4}-`))
    expect(await runCli(["migrate", "down"], env)).toBe(`reverted ${names.at(-1)}`)
    expect(await runCli(["migrate", "status"], env)).toContain(`pending  ${names.at(-1)}`)
    expect(await runCli(["migrate", "up"], env)).toBe(`applied ${names.at(-1)}`)
  })

  test("every migration reverts cleanly, down to an empty database", async () => {
    const env = await freshEnv()
    await runCli(["migrate", "up"], env)
    for (const name of [...names].reverse())
      expect(await runCli(["migrate", "down"], env)).toBe(`reverted ${name}`)
    expect(await runCli(["migrate", "down"], env)).toBe("nothing to revert")
  })

  test("two processes migrating one database at once apply each migration exactly once", async () => {
    const env = { ...process.env, ...(await freshEnv()) }
    const run = () =>
      Bun.spawn([process.execPath, join(import.meta.dir, "..", "cli", "main.ts"), "migrate", "up"], {
        env,
        stdout: "pipe",
        stderr: "pipe",
      })
    const [a, b] = [run(), run()]
    const outputs = await Promise.all(
      [a, b].map(async (p) => [await new Response(p.stdout).text(), await new Response(p.stderr).text()]),
    )
    expect([await a.exited, await b.exited]).toEqual([0, 0])
    const applied = outputs.flatMap(([out]) => out!.split("\n").filter((l) => l.startsWith("applied ")))
    expect(applied.sort()).toEqual(names.map((n) => `applied ${n}`).sort())
    expect(await runCli(["migrate", "up"], env)).toBe("up to date")
  })
})
