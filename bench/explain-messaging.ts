/**
 * EXPLAIN check of the messaging hot paths on the generated dataset: runs the product's own service functions
 * (send, history pages, conversation list, search across and within conversations, sync, token check) with
 * a Kysely that records every SQL statement they issue, then asks the database for each statement's plan.
 *
 *   bun bench/explain-messaging.ts [--db sqlite|postgres] [--verbose] [--pg-template db]
 *
 * Postgres: FAIL when a plan has a sequential scan of `messages` (WARN for other tables).
 * SQLite: FAIL when EXPLAIN QUERY PLAN scans `messages` without an index (WARN for a full scan of another table
 * or of an index). Each read also shows its execution time inside the database (best of 5; Postgres: EXPLAIN
 * ANALYZE), which tells query cost from round trips. Runs on a throwaway copy (the send writes), removed at the end.
 */
import { copyFileSync, rmSync } from "node:fs"
import { join } from "node:path"
import { Kysely, type LogEvent, PostgresDialect } from "kysely"
import { BunSqliteDialect } from "kysely-bun-sqlite"
import pg from "pg"
import { verifyAccessToken } from "../src/auth/auth.plugin.ts"
import { signAccessToken } from "../src/auth/tokens.ts"
import { listConversations } from "../src/conversations/conversations.service.ts"
import type { Database } from "../src/db/schema.ts"
import { migrateUp } from "../src/db/migrate.ts"
import { createDeps, type Deps } from "../src/deps.ts"
import { searchMessages } from "../src/messages/messages.search.ts"
import { searchDatabasePath } from "../src/messages/search.indexer.ts"
import { listConversationMessages, sendMessage } from "../src/messages/messages.service.ts"
import { listChangesSince } from "../src/sync/sync.service.ts"
import {
  args,
  benchConfig,
  dropPostgresDatabase,
  loadMeta,
  outDir,
  postgresAdmin,
  postgresUrl,
} from "./lib.ts"

const opts = args()
const dialects = (opts.db ?? "sqlite,postgres").split(",") as ("sqlite" | "postgres")[]
let failures = 0

for (const dialect of dialects) {
  const meta = await loadMeta(dialect, opts["pg-template"])
  if (!meta) {
    console.log(`${dialect}: no dataset (bun bench/generate-messaging.ts --db ${dialect}); skipped`)
    continue
  }
  let url: string
  let cleanup: () => Promise<void>
  if (dialect === "sqlite") {
    const work = join(outDir, "work-explain.db")
    copyFileSync(meta.location, work)
    // The search index, a database of its own (src/messages/search.indexer.ts): copied, not rebuilt.
    copyFileSync(searchDatabasePath(meta.location), searchDatabasePath(work))
    url = `sqlite:${work}`
    cleanup = async () => {
      for (const f of [work, searchDatabasePath(work)])
        for (const s of ["", "-wal", "-shm"]) rmSync(f + s, { force: true })
    }
  } else {
    const name = `urge_bench_msg_explain_${process.pid}`
    await dropPostgresDatabase(name)
    await postgresAdmin(`create database ${name} template ${meta.location}`)
    url = postgresUrl(name)
    cleanup = () => dropPostgresDatabase(name)
  }
  const deps = createDeps(
    benchConfig({
      "database.url": url,
      "data.dir": join(outDir, "explain-data"),
      "auth.jwt_secret": meta.jwtSecret,
    }),
  )
  // Migrations newer than the dataset (--pg-template), as the server would apply them on start.
  await migrateUp(deps.database.db)
  const captured: { label: string; sql: string; parameters: readonly unknown[] }[] = []
  let label = ""
  const log = (event: LogEvent) => {
    if (event.level === "query")
      captured.push({ label, sql: event.query.sql, parameters: event.query.parameters })
  }
  const pool = dialect === "postgres" ? new pg.Pool({ connectionString: url, max: 4 }) : null
  const db =
    dialect === "sqlite"
      ? new Kysely<Database>({ dialect: new BunSqliteDialect({ database: deps.database.sqlite! }), log })
      : new Kysely<Database>({ dialect: new PostgresDialect({ pool: pool! }), log })
  // Hot paths also run hand-written SQL on bun:sqlite directly (statement cache): record those too.
  const record = (sql: string, parameters: unknown[]) => captured.push({ label, sql, parameters })
  const wrapStatement = (sql: string, st: any) =>
    new Proxy(st, {
      get: (t, p) =>
        ["all", "get", "run", "values"].includes(p as string)
          ? (...params: unknown[]) => (record(sql, params), t[p](...params))
          : typeof t[p] === "function"
            ? t[p].bind(t)
            : t[p],
    })
  const sqlite = deps.database.sqlite
    ? new Proxy(deps.database.sqlite, {
        get: (t: any, p) =>
          p === "query" || p === "prepare"
            ? (sql: string) => wrapStatement(sql, t[p](sql))
            : typeof t[p] === "function"
              ? t[p].bind(t)
              : t[p],
      })
    : undefined
  // Postgres hot paths run named prepared statements on the pool (readQuery, the send batch): record those too.
  const tracedPool = pool
    ? new Proxy(pool, {
        get: (t: any, p) =>
          p === "query"
            ? (q: any, values?: unknown[]) => {
                if (typeof q === "object" && q?.text) record(q.text, q.values ?? [])
                else if (typeof q === "string") record(q, values ?? [])
                return t.query(q, values)
              }
            : typeof t[p] === "function"
              ? t[p].bind(t)
              : t[p],
      })
    : undefined
  const traced: Deps = {
    ...deps,
    database: { ...deps.database, db, sqlite, pool: tracedPool ?? deps.database.pool },
  }

  const user = meta.sample[0]!
  const big = user.conversations.reduce((a, b) => (b.lastSeq > a.lastSeq ? b : a))
  const word = meta.searchWords[1]!.word
  const run = async (name: string, f: () => Promise<unknown>) => {
    label = name
    await f()
  }
  const token = signAccessToken(
    meta.jwtSecret,
    { sub: user.id, role: "REGULAR", sid: user.sessionId },
    Date.now(),
    600,
  )
  await run("auth: token check", () => verifyAccessToken(traced, token))
  await run("send", () =>
    sendMessage(traced, user.id, {
      conversation_id: big.id,
      content: "explain me",
      client_message_id: "explain-1",
    }),
  )
  await run("send (retry, same client id)", () =>
    sendMessage(traced, user.id, {
      conversation_id: big.id,
      content: "explain me",
      client_message_id: "explain-1",
    }),
  )
  await run("history newest 50", () =>
    listConversationMessages(traced, user.id, big.id, { limit: 50 } as any),
  )
  await run("history 50 before seq", () =>
    listConversationMessages(traced, user.id, big.id, {
      limit: 50,
      before_seq: Math.floor(big.lastSeq / 2),
    } as any),
  )
  await run("conversation list 50", () => listConversations(traced, user.id, { limit: 50, archived: false }))
  await run("search all conversations", () => searchMessages(traced, user.id, { q: word, limit: 50 }))
  await run("search one conversation", () =>
    searchMessages(traced, user.id, { q: word, limit: 50, conversationId: big.id }),
  )
  await run("sync since 0 (first page)", () => listChangesSince(traced, user.id, undefined as any, 100))

  console.log(`\n=== ${dialect}: ${captured.length} statements ===`)
  const seen = new Set<string>()
  for (const q of captured) {
    const key = `${q.label}\u0000${q.sql}`
    if (seen.has(key) || /^\s*(begin|commit|rollback|savepoint|release)/i.test(q.sql)) continue
    seen.add(key)
    let plan: string[]
    if (dialect === "sqlite") {
      plan = (
        deps.database.sqlite!.query(`EXPLAIN QUERY PLAN ${q.sql}`).all(...(q.parameters as any[])) as {
          detail: string
        }[]
      ).map((r) => r.detail)
    } else {
      plan = (await pool!.query(`EXPLAIN ${q.sql}`, q.parameters as unknown[])).rows.map(
        (r) => r["QUERY PLAN"],
      )
    }
    // Execution time inside the database (reads only; best of 5), to tell query cost from round trips.
    let exec = ""
    if (/^\s*(select|with)\b/i.test(q.sql)) {
      let best = Infinity
      for (let i = 0; i < 5; i++) {
        if (dialect === "sqlite") {
          const t0 = performance.now()
          deps.database.sqlite!.query(q.sql).all(...(q.parameters as any[]))
          best = Math.min(best, performance.now() - t0)
        } else {
          const { rows } = await pool!.query(
            `EXPLAIN (ANALYZE, FORMAT JSON) ${q.sql}`,
            q.parameters as unknown[],
          )
          best = Math.min(best, rows[0]["QUERY PLAN"][0]["Execution Time"])
        }
      }
      exec = ` (${best.toFixed(2)} ms)`
    }
    const verdict = judge(dialect, plan)
    if (verdict.startsWith("FAIL")) failures++
    const shortSql = q.sql.replace(/\s+/g, " ").slice(0, opts.verbose ? 2000 : 160)
    console.log(`[${verdict}]${exec} ${q.label}: ${shortSql}`)
    if (opts.verbose || verdict !== "ok") for (const line of plan) console.log(`      ${line.slice(0, 220)}`)
  }
  await db.destroy().catch(() => {})
  await deps.close()
  await cleanup()
  rmSync(join(outDir, "explain-data"), { recursive: true, force: true })
}

function judge(dialect: "sqlite" | "postgres", plan: string[]): string {
  if (dialect === "postgres") {
    const seq = plan.filter((l) => /Seq Scan on (\w+)/.test(l)).map((l) => /Seq Scan on (\w+)/.exec(l)![1]!)
    if (seq.includes("messages")) return "FAIL seq scan of messages"
    if (seq.length) return `WARN seq scan of ${[...new Set(seq)].join(", ")}`
    return "ok"
  }
  const bad: string[] = []
  const warn: string[] = []
  for (const l of plan) {
    const m = /^SCAN (\w+)(?: AS (\w+))?(.*)$/.exec(l.trim())
    if (!m) continue
    const rest = m[3] ?? ""
    if (rest.includes("VIRTUAL TABLE")) continue
    if (/CONSTANT ROW|LIST SUBQUERY/.test(l)) continue
    const table = m[1]!
    if (!rest.includes("USING")) (/^(messages|m)$/.test(table) ? bad : warn).push(`full scan of ${table}`)
    else warn.push(`full index scan of ${table}`)
  }
  if (bad.length) return `FAIL ${bad.join(", ")}`
  if (warn.length) return `WARN ${warn.join(", ")}`
  return "ok"
}

process.exit(failures ? 1 : 0)
