/**
 * Shared pieces of the messaging benchmarks: where generated data lives, opening it with the product's own
 * config and database code, Postgres database management, latency statistics and a keep-alive load runner.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { cpus, tmpdir, totalmem } from "node:os"
import { join, resolve } from "node:path"
import pg from "pg"
import { type Config, type ConfigKey, loadConfig } from "../src/config.ts"
import { migrateUp } from "../src/db/migrate.ts"
import { createDeps, type Deps } from "../src/deps.ts"
import { createLogger } from "../src/logger.ts"
import { createTestDatabase, testPostgresUrl } from "../tests/helpers/server.ts"

/** Where generated data and working copies go (git-ignored). */
export const outDir = resolve(import.meta.dir, "out")
/** The Postgres server of this machine; databases are created next to `postgres`. */
export const postgresAdminUrl =
  process.env.BENCH_POSTGRES_URL || "postgres://postgres@127.0.0.1:5432/postgres"

/** A Postgres URL for database `name` on the bench server. */
export function postgresUrl(name: string): string {
  const url = new URL(postgresAdminUrl)
  url.pathname = `/${name}`
  return url.toString()
}

/** Runs statements on the admin database (create/drop databases). */
export async function postgresAdmin(...statements: string[]): Promise<void> {
  const client = new pg.Client({ connectionString: postgresAdminUrl })
  await client.connect()
  try {
    for (const s of statements) await client.query(s)
  } finally {
    await client.end()
  }
}

/** Drops a bench database, closing whatever is still connected to it. */
export async function dropPostgresDatabase(name: string): Promise<void> {
  await postgresAdmin(`drop database if exists ${name} with (force)`)
}

/** Whether a Postgres database exists. */
export async function postgresDatabaseExists(name: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: postgresAdminUrl })
  await client.connect()
  try {
    const { rows } = await client.query("select 1 from pg_database where datname = $1", [name])
    return rows.length > 0
  } finally {
    await client.end()
  }
}

/** A sample user the benchmarks act as: a live session (tokens are signed at bench time) and their conversations. */
export type SampleUser = {
  id: string
  role: "REGULAR"
  sessionId: string
  conversations: { id: string; lastSeq: number }[]
}

/** What the generator leaves next to the data, so benchmarks reuse it. */
export type DatasetMeta = {
  dialect: "sqlite" | "postgres"
  /** Hash of migrations/*.ts when generated: a dataset from older migrations is regenerated. */
  schemaHash: string
  /** SQLite file, or Postgres database name. */
  location: string
  jwtSecret: string
  generatedAt: string
  generationSeconds: number
  counts: { users: number; conversations: number; groups: number; memberships: number; messages: number }
  largestConversation: { id: string; messages: number }
  sample: SampleUser[]
  /** Search words by frequency class, with how many messages contain each. */
  searchWords: { word: string; messages: number }[]
}

export const metaPath = (dialect: "sqlite" | "postgres") => join(outDir, `messaging-${dialect}.json`)
export const sqliteDataPath = join(outDir, "messaging-1m.db")
export const postgresDataName = "urge_bench_msg_data"

/** A hash of the migrations' source: the schema a dataset was generated with. */
export function schemaHash(): string {
  const dir = resolve(import.meta.dir, "../migrations")
  const hash = new Bun.CryptoHasher("sha256")
  for (const file of readdirSync(dir).sort()) hash.update(readFileSync(join(dir, file)))
  return hash.digest("hex").slice(0, 16)
}

/**
 * The generated dataset of this dialect, or null when it was never generated, is gone, or predates the migrations.
 * `pgTemplate` (Postgres; the benches' `--pg-template`): copy that database instead (a copy of the dataset made
 * with `createdb -T`, possibly migrated further); migrations newer than the dataset are then allowed, since the
 * benches apply pending migrations to their working copy (append-only: older data stays valid).
 */
export async function loadMeta(
  dialect: "sqlite" | "postgres",
  pgTemplate?: string,
): Promise<DatasetMeta | null> {
  const path = metaPath(dialect)
  if (!existsSync(path)) return null
  const meta = JSON.parse(readFileSync(path, "utf8")) as DatasetMeta
  if (dialect === "postgres" && pgTemplate) {
    if (meta.schemaHash !== schemaHash())
      console.log(
        `postgres: dataset from other migrations; pending ones are applied to the copy of ${pgTemplate}`,
      )
    meta.location = pgTemplate
  } else if (meta.schemaHash !== schemaHash()) {
    console.log(`${dialect}: the dataset was generated with other migrations; regenerate it`)
    return null
  }
  if (dialect === "sqlite" && !existsSync(meta.location)) return null
  if (dialect === "postgres" && !(await postgresDatabaseExists(meta.location))) return null
  return meta
}

export function saveMeta(meta: DatasetMeta): void {
  writeFileSync(metaPath(meta.dialect), JSON.stringify(meta, null, 1))
}

/** The product's config for a bench database (no config file, no environment). */
export function benchConfig(overrides: Partial<Record<ConfigKey, unknown>>): Config {
  return loadConfig({
    env: {},
    cwd: outDir,
    configPath: undefined,
    overrides: { "log.level": "warn", "rate_limit.enabled": false, ...overrides },
  })
}

/** Percentiles of a list of durations (ms). */
export function stats(ms: number[]) {
  const sorted = [...ms].sort((a, b) => a - b)
  const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN
  const mean = sorted.reduce((s, x) => s + x, 0) / Math.max(1, sorted.length)
  return { n: sorted.length, mean, p50: at(50), p90: at(90), p99: at(99), max: sorted.at(-1) ?? NaN }
}

export const fmt = (n: number, digits = 2) => (Number.isFinite(n) ? n.toFixed(digits) : "-")

/** Machine description for the report. */
export function machine(): string {
  const cpu = cpus()[0]?.model ?? "cpu"
  return `${cpus().length} × ${cpu.trim()}, ${Math.round(totalmem() / 2 ** 30)} GiB RAM, Bun ${Bun.version}, ${process.platform}`
}

/** One load phase's result. */
export type LoadResult = {
  requests: number
  errors: number
  seconds: number
  rate: number
  latency: ReturnType<typeof stats>
  firstError?: string
}

/**
 * Runs `concurrency` workers that each call `request()` back to back (fetch keeps connections alive) for
 * `warmupSeconds` (not recorded) then `seconds` (recorded). `request` returns true on success.
 */
export async function runLoad(
  concurrency: number,
  seconds: number,
  request: (worker: number) => Promise<boolean | string>,
  warmupSeconds = 1,
  maxRequests = Infinity,
): Promise<LoadResult> {
  const warmEnd = performance.now() + warmupSeconds * 1000
  const end = warmEnd + seconds * 1000
  const latencies: number[] = []
  let errors = 0
  let firstError: string | undefined
  let measuredStart = 0
  let measuredEnd = 0
  const worker = async (w: number) => {
    for (;;) {
      const t0 = performance.now()
      if (t0 >= end || latencies.length + errors >= maxRequests) return
      let ok: boolean | string
      try {
        ok = await request(w)
      } catch (error) {
        ok = String(error)
      }
      const t1 = performance.now()
      if (t0 < warmEnd) continue
      if (measuredStart === 0) measuredStart = t0
      measuredEnd = Math.max(measuredEnd, t1)
      if (ok === true) latencies.push(t1 - t0)
      else {
        errors++
        firstError ??= typeof ok === "string" ? ok : "failed"
      }
    }
  }
  await Promise.all(Array.from({ length: concurrency }, (_, w) => worker(w)))
  const elapsed = (measuredEnd - measuredStart) / 1000
  return {
    requests: latencies.length,
    errors,
    seconds: elapsed,
    rate: latencies.length / elapsed,
    latency: stats(latencies),
    firstError,
  }
}

/**
 * Open loop: starts `request()` at a fixed `rate` per second whatever the server's answers (new requests do
 * not wait for earlier ones), for `warmupSeconds` (not recorded) then `seconds`. Latency counts from the time a
 * request was due, not from when it was sent, so a server that falls behind shows it (no coordinated
 * omission); more than `maxInFlight` outstanding requests count as errors.
 */
export async function runRate(
  rate: number,
  seconds: number,
  request: () => Promise<boolean | string>,
  warmupSeconds = 1,
  maxInFlight = 2048,
): Promise<LoadResult> {
  const start = performance.now()
  const warmEnd = start + warmupSeconds * 1000
  const end = warmEnd + seconds * 1000
  const latencies: number[] = []
  let errors = 0
  let firstError: string | undefined
  let inFlight = 0
  const pending = new Set<Promise<void>>()
  const fire = (due: number) => {
    const recorded = due >= warmEnd
    if (inFlight >= maxInFlight) {
      if (recorded) errors++
      firstError ??= `more than ${maxInFlight} requests outstanding`
      return
    }
    inFlight++
    const p = (async () => {
      let ok: boolean | string
      try {
        ok = await request()
      } catch (error) {
        ok = String(error)
      }
      inFlight--
      if (!recorded) return
      if (ok === true) latencies.push(performance.now() - due)
      else {
        errors++
        firstError ??= typeof ok === "string" ? ok : "failed"
      }
    })()
    pending.add(p)
    p.finally(() => pending.delete(p))
  }
  let sent = 0
  for (;;) {
    const now = performance.now()
    if (now >= end) break
    while (start + (sent * 1000) / rate <= now) fire(start + (sent++ * 1000) / rate)
    await Bun.sleep(1)
  }
  await Promise.all(pending)
  return {
    requests: latencies.length,
    errors,
    seconds,
    rate: latencies.length / seconds,
    latency: stats(latencies),
    firstError,
  }
}

/** Deterministic pseudo-random numbers (mulberry32), so a dataset is the same for a given seed. */
export function rng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** Parses `--name value` and `--flag` arguments. */
export function args(): Record<string, string> {
  const out: Record<string, string> = {}
  const argv = process.argv.slice(2)
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!
    if (!a.startsWith("--")) continue
    const [k, v] = a.slice(2).split("=", 2) as [string, string | undefined]
    if (v !== undefined) out[k] = v
    else if (argv[i + 1] !== undefined && !argv[i + 1]!.startsWith("--")) out[k] = argv[++i]!
    else out[k] = "true"
  }
  return out
}

/**
 * Deps on a scratch database for in-process micro-benchmarks: a temp SQLite directory, or a fresh Postgres
 * database when URGE_TEST_DATABASE_URL is set (as in the tests); migrated, rate limits off. `close` removes it.
 */
export async function scratchDeps(): Promise<{ deps: Deps; close(): Promise<void> }> {
  const database = testPostgresUrl ? await createTestDatabase() : null
  const dir = mkdtempSync(join(tmpdir(), "urge-bench-"))
  const config = loadConfig({
    env: {},
    overrides: {
      "data.dir": dir,
      "database.url": database?.url ?? "",
      "auth.jwt_secret": "bench-secret",
      "rate_limit.enabled": false,
    },
  })
  const deps = createDeps(config, { logger: createLogger("error") })
  await migrateUp(deps.database.db)
  return {
    deps,
    async close() {
      await deps.close()
      rmSync(dir, { recursive: true, force: true })
      await database?.drop()
    },
  }
}
