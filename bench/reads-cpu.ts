/**
 * CPU per read on Postgres, in-process: the service functions a request runs (token check included, no HTTP),
 * one at a time on a database you name (a copy of the dataset; only reads, and the token check's
 * last_used_at touch), with the sample users and words of bench/messaging.ts. Per figure: wall p50/p90/p99,
 * CPU of this process per request ("client": the server's share, all threads) and of the database's
 * backends ("pg", from /proc, 10 ms ticks). Less disturbed by a busy machine than HTTP latency.
 *
 *   createdb -U postgres -h 127.0.0.1 -T urge_bench_msg_data my_copy   (then migrate it: bun cli/main.ts migrate up)
 *   bun bench/reads-cpu.ts --db my_copy [--n 150] [--warm 15] [--phases history,list,search] [--seed 42]
 *                          [--pool 10] [--plans]   (--plans: generic/custom plan counts of the pool's statements)
 */
import { rmSync } from "node:fs"
import { join } from "node:path"
import pg from "pg"
import { verifyAccessToken } from "../src/auth/auth.plugin.ts"
import { signAccessToken } from "../src/auth/tokens.ts"
import { listConversations } from "../src/conversations/conversations.service.ts"
import { createDeps } from "../src/deps.ts"
import { searchMessages } from "../src/messages/messages.search.ts"
import { listConversationMessages } from "../src/messages/messages.service.ts"
import { args, benchConfig, loadMeta, outDir, postgresUrl, rng, stats } from "./lib.ts"
import { cpuSeconds } from "./realtime/lib.ts"
const opts = args()
const dbName = opts.db
if (!dbName) throw new Error("--db <a copy of the dataset> is required")
const n = Number(opts.n ?? 200)
const meta = (await loadMeta("postgres", dbName))!
const dataDir = join(outDir, `reads-cpu-${process.pid}`)
const deps = createDeps(
  benchConfig({
    "database.url": postgresUrl(dbName),
    "data.dir": dataDir,
    "auth.jwt_secret": meta.jwtSecret,
    "database.pool_size": Number(opts.pool ?? 10),
  } as any),
)
const rand = rng(Number(opts.seed ?? 42))
const pick = <T>(l: T[]) => l[Math.floor(rand() * l.length)]!
const users = meta.sample
  .filter((u) => u.conversations.length > 0)
  .map((u) => ({
    ...u,
    token: signAccessToken(meta.jwtSecret, { sub: u.id, role: u.role, sid: u.sessionId }, Date.now(), 3600),
  }))
const largest = (u: (typeof users)[number]) =>
  u.conversations.reduce((a, b) => (b.lastSeq > a.lastSeq ? b : a))
const admin = new pg.Client({ connectionString: postgresUrl("postgres") })
await admin.connect()
async function pgCpu() {
  const { rows } = await admin.query("select pid from pg_stat_activity where datname = $1", [dbName])
  let s = 0
  for (const { pid } of rows)
    try {
      s += cpuSeconds(pid)
    } catch {}
  return s
}
const auth = async (u: any) => (await verifyAccessToken(deps, u.token)).userId
const phases: [string, () => Promise<unknown>][] = [
  [
    "history newest",
    async () => {
      const u = pick(users)
      const c = pick(u.conversations)
      return listConversationMessages(deps, await auth(u), c.id, { limit: 50 } as any)
    },
  ],
  [
    "history before",
    async () => {
      const u = pick(users)
      const c = pick(u.conversations)
      const b = 1 + Math.floor(rand() * c.lastSeq)
      return listConversationMessages(deps, await auth(u), c.id, { limit: 50, before_seq: b } as any)
    },
  ],
  [
    "list",
    async () => {
      const u = pick(users)
      return listConversations(deps, await auth(u), { limit: 50, archived: false })
    },
  ],
  ...meta.searchWords.map(
    (w) =>
      [
        `search all ${w.word} (${w.messages})`,
        async () => {
          const u = pick(users)
          return searchMessages(deps, await auth(u), { q: w.word, limit: 50 })
        },
      ] as [string, () => Promise<unknown>],
  ),
  ...meta.searchWords.map(
    (w) =>
      [
        `search one ${w.word}`,
        async () => {
          const u = pick(users)
          return searchMessages(deps, await auth(u), { q: w.word, limit: 50, conversationId: largest(u).id })
        },
      ] as [string, () => Promise<unknown>],
  ),
]
const wanted = opts.phases?.split(",")
const out: string[] = []
for (const [name, f] of phases.filter(([p]) => !wanted || wanted.some((w) => p.includes(w)))) {
  for (let i = 0; i < Number(opts.warm ?? 20); i++) await f()
  const ms: number[] = []
  const c0 = process.cpuUsage()
  const p0 = await pgCpu()
  for (let i = 0; i < n; i++) {
    const t = performance.now()
    await f()
    ms.push(performance.now() - t)
    if (opts.pause) await Bun.sleep(Number(opts.pause))
  }
  const c1 = process.cpuUsage(c0)
  const p1 = await pgCpu()
  const s = stats(ms)
  const line = `${name.padEnd(32)} p50 ${s.p50.toFixed(2)} p90 ${s.p90.toFixed(2)} p99 ${s.p99.toFixed(2)} max ${s.max.toFixed(2)} ms | client ${Math.round((c1.user + c1.system) / n)} µs | pg ${Math.round(((p1 - p0) * 1e6) / n)} µs`
  console.log(line)
  out.push(line)
}
if (opts.plans) {
  const clients = await Promise.all(
    Array.from({ length: Number(opts.pool ?? 10) }, () => deps.database.pool!.connect()),
  )
  for (const cl of clients) {
    const r = await cl.query(
      "select name, generic_plans, custom_plans from pg_prepared_statements where custom_plans + generic_plans > 0",
    )
    if (r.rows.length)
      console.log(r.rows.map((x: any) => `${x.name}:${x.generic_plans}g/${x.custom_plans}c`).join(" "))
  }
  for (const cl of clients) cl.release()
}
await admin.end()
await deps.close()
rmSync(dataDir, { recursive: true, force: true })
