import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import pg from "pg"
import { type Clock, manualClock } from "../../src/clock.ts"
import { type ConfigKey, loadConfig } from "../../src/config.ts"
import { migrateUp } from "../../src/db/migrate.ts"
import { createDeps, type Deps } from "../../src/deps.ts"
import { createLogger } from "../../src/logger.ts"
import { startServer } from "../../src/server.ts"

/** Postgres server for the test run, when set (CI sets it); each test server gets its own fresh database. */
export const testPostgresUrl = process.env.URGE_TEST_DATABASE_URL || ""
export const dialectUnderTest = testPostgresUrl ? "postgres" : "sqlite"

export type ApiResponse<T = any> = { status: number; body: T; headers: Headers }
export type ApiOptions = {
  token?: string
  body?: unknown
  headers?: Record<string, string>
  raw?: RequestInit["body"]
}

export type TestServer = {
  url: string
  port: number
  deps: Deps
  /** Every log line the server wrote (JSON strings). */
  logs: string[]
  /** The injected clock: `clock.advance(ms)` moves server time. */
  clock: ReturnType<typeof manualClock>
  /** A request to `path` on the server (e.g. `/api/auth/me`), JSON body in and parsed JSON out. */
  api<T = any>(method: string, path: string, options?: ApiOptions): Promise<ApiResponse<T>>
  /** WebSocket URL for a path (`/ws`). */
  wsUrl(path: string): string
  stop(): Promise<void>
}

export type TestServerOptions = {
  config?: Partial<Record<ConfigKey, unknown>>
  /** Keep the data directory (and database) of an earlier server: restart tests. */
  dataDir?: string
  databaseUrl?: string
  clock?: Clock
}

/** Creates a fresh Postgres database for a test and returns its URL and a function that drops it. */
export async function createTestDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `urge_test_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`
  const admin = new pg.Client({ connectionString: testPostgresUrl })
  await admin.connect()
  await admin.query(`create database ${name}`)
  await admin.end()
  const url = new URL(testPostgresUrl)
  url.pathname = `/${name}`
  return {
    url: url.toString(),
    drop: async () => {
      const client = new pg.Client({ connectionString: testPostgresUrl })
      await client.connect()
      await client.query(`drop database if exists ${name} with (force)`)
      await client.end()
    },
  }
}

/** Starts the real server on port 0 with a temp data directory: SQLite, or a fresh Postgres database when URGE_TEST_DATABASE_URL is set. */
export async function startTestServer(options: TestServerOptions = {}): Promise<TestServer> {
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), "urge-test-"))
  const ownDatabase = !options.databaseUrl && testPostgresUrl ? await createTestDatabase() : null
  const databaseUrl = options.databaseUrl ?? ownDatabase?.url ?? ""
  const config = loadConfig({
    env: {},
    overrides: {
      "server.host": "127.0.0.1",
      "server.port": 0,
      "data.dir": dataDir,
      "database.url": databaseUrl,
      "auth.jwt_secret": "test-secret-test-secret-test-secret",
      // Every test request comes from 127.0.0.1: rate limit tests turn this back on.
      "rate_limit.enabled": false,
      ...options.config,
    },
  })
  const logs: string[] = []
  const logger = createLogger("debug", { sink: (line) => logs.push(line) })
  const clock = (options.clock as ReturnType<typeof manualClock>) ?? manualClock(Date.now())
  const deps = createDeps(config, { logger, clock })
  await migrateUp(deps.database.db)
  const running = await startServer(deps)
  const base = `http://127.0.0.1:${running.port}`
  let stopped = false
  return {
    url: base,
    port: running.port,
    deps,
    logs,
    clock,
    wsUrl: (path) => `ws://127.0.0.1:${running.port}${path}`,
    async api(method, path, opts = {}) {
      const headers: Record<string, string> = { ...opts.headers }
      if (opts.token) headers.authorization = `Bearer ${opts.token}`
      let body: RequestInit["body"] = opts.raw
      if (opts.body !== undefined) {
        headers["content-type"] ??= "application/json"
        body = JSON.stringify(opts.body)
      }
      const res = await fetch(base + path, {
        method,
        headers,
        body,
      })
      const text = await res.text()
      let parsed: unknown = text
      try {
        parsed = text ? JSON.parse(text) : null
      } catch {}
      return { status: res.status, body: parsed as any, headers: res.headers }
    },
    async stop() {
      if (stopped) return
      stopped = true
      await running.stop()
      if (ownDatabase) await ownDatabase.drop()
      if (!options.dataDir) rmSync(dataDir, { recursive: true, force: true })
    },
  }
}
