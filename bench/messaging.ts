/**
 * Messaging benchmarks against the real server (a child process `bun cli/main.ts serve`; this process is the
 * load client, HTTP keep-alive, N concurrent connections) on the generated dataset (bench/generate-messaging.ts).
 *
 *   bun bench/messaging.ts [--targets sqlite-full,sqlite-normal,postgres] [--seconds 8] [--concurrency 32]
 *                          [--read-seconds 3] [--only send|reads] [--json out.json] [--profile]
 *                          [--rate 5000[,3000]]   (sends: also an open-loop run at each fixed rate, see runRate)
 *                          [--phases history,list,search]   (reads: only the phases whose name contains one)
 *                          [--pg-template db]   (copy this database instead of the dataset's, see loadMeta)
 *                          [--pg-work name]   (the Postgres copy's name; default urge_bench_msg_work_<pid>)
 *
 * Each target runs on a throwaway copy of the dataset (SQLite: a file copy; Postgres: CREATE DATABASE …
 * TEMPLATE), so runs are repeatable; the copy is removed at the end. Beside the server figures, the same run
 * measures raw baselines on that copy with the server stopped: bun:sqlite inserts into `messages` (same
 * durability, with their FTS5 rows written after them in the same transaction), one row per transaction and
 * 100 per transaction; on Postgres, pg inserts
 * (autocommit, 8 connections in parallel, 100 rows per statement).
 */
import { Database as SqliteDatabase } from "bun:sqlite"
import { type Subprocess, spawn } from "bun"
import { copyFileSync, mkdirSync, rmSync, writeFileSync } from "node:fs"
import { join, resolve } from "node:path"
import pg from "pg"
import { signAccessToken } from "../src/auth/tokens.ts"
import { searchDatabasePath } from "../src/messages/search.indexer.ts"
import {
  args,
  type DatasetMeta,
  dropPostgresDatabase,
  fmt,
  type LoadResult,
  loadMeta,
  machine,
  outDir,
  postgresAdmin,
  postgresUrl,
  rng,
  runLoad,
  runRate,
  type SampleUser,
} from "./lib.ts"
import { cpuSeconds } from "./realtime/lib.ts"

const opts = args()
const targets = (opts.targets ?? "sqlite-full,sqlite-normal,postgres").split(",")
const sendSeconds = Number(opts.seconds ?? 8)
const readSeconds = Number(opts["read-seconds"] ?? 3)
const concurrency = Number(opts.concurrency ?? 32)
const readConcurrency = (opts["read-concurrency"] ?? "1,8").split(",").map(Number)
const only = opts.only ?? "all"
const root = resolve(import.meta.dir, "..")
const bun = process.execPath

type Row = {
  target: string
  what: string
  concurrency: number | string
  result: LoadResult | null
  /** CPU the server process (and, on Postgres, the backends of the working database) used per request. */
  cpu?: { server: number; postgres?: number }
  note?: string
}
const rows: Row[] = []
const baselines: { target: string; what: string; rate: number; note?: string }[] = []

const rand = rng(42)
const pick = <T>(list: T[]): T => list[Math.floor(rand() * list.length)]!
const words = "hello world lunch meeting tomorrow ok thanks see you soon great idea call me later".split(" ")
const randomText = () =>
  Array.from({ length: 3 + Math.floor(rand() * 10) }, () => pick(words)).join(" ") +
  ` ${Math.floor(rand() * 1e6)}`

async function freePort(): Promise<number> {
  const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } })
  const port = s.port
  s.stop(true)
  return port
}

/** Starts `urge serve` on the working copy and waits until /health answers. */
async function startServer(env: Record<string, string>): Promise<{ url: string; proc: Subprocess }> {
  const port = await freePort()
  const dataDir = join(outDir, "server-data")
  mkdirSync(dataDir, { recursive: true })
  // --profile: the server writes a CPU profile (markdown) to bench/out/profile/ when it stops.
  const profile = opts.profile ? ["--cpu-prof-md", `--cpu-prof-dir=${join(outDir, "profile")}`] : []
  const proc = spawn([bun, ...profile, "cli/main.ts", "serve"], {
    cwd: root,
    env: {
      PATH: process.env.PATH ?? "",
      HOME: process.env.HOME ?? "/tmp",
      // The allocator's settings, for experiments (e.g. MIMALLOC_PURGE_DELAY).
      ...Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith("MIMALLOC_"))),
      URGE_SERVER_HOST: "127.0.0.1",
      URGE_SERVER_PORT: String(port),
      URGE_DATA_DIR: dataDir,
      URGE_LOG_LEVEL: "warn",
      URGE_LOG_REQUESTS: "false",
      URGE_RATE_LIMIT_ENABLED: "false",
      ...env,
    },
    stdout: "inherit",
    stderr: "inherit",
  })
  const url = `http://127.0.0.1:${port}`
  for (let i = 0; i < 600; i++) {
    try {
      const r = await fetch(`${url}/health`)
      if (r.ok) return { url, proc }
    } catch {}
    if (proc.exitCode !== null) throw new Error(`server exited with ${proc.exitCode}`)
    await Bun.sleep(100)
  }
  proc.kill()
  throw new Error("server did not start")
}

async function stopServer(proc: Subprocess) {
  proc.kill("SIGTERM")
  const timer = setTimeout(() => proc.kill("SIGKILL"), 15_000)
  await proc.exited
  clearTimeout(timer)
}

type Actor = SampleUser & { token: string; headers: Record<string, string> }

function actors(meta: DatasetMeta): Actor[] {
  const now = Date.now()
  return meta.sample
    .filter((u) => u.conversations.length > 0)
    .map((u) => {
      const token = signAccessToken(meta.jwtSecret, { sub: u.id, role: u.role, sid: u.sessionId }, now, 3600)
      return {
        ...u,
        token,
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      }
    })
}

async function get(url: string, headers: Record<string, string>, check?: (body: any) => boolean) {
  const r = await fetch(url, { headers })
  if (r.status !== 200) return `${r.status} ${(await r.text()).slice(0, 200)}`
  const body = await r.json()
  return check ? check(body) || `unexpected body ${JSON.stringify(body).slice(0, 200)}` : true
}

async function readPhases(target: string, url: string, meta: DatasetMeta, users: Actor[], pid: number) {
  const largest = (u: Actor) => u.conversations.reduce((a, b) => (b.lastSeq > a.lastSeq ? b : a))
  const phases: { what: string; request: () => Promise<boolean | string> }[] = [
    {
      what: "history page of 50 (newest)",
      request: () => {
        const u = pick(users)
        const c = pick(u.conversations)
        return get(`${url}/api/conversations/${c.id}/messages?limit=50`, u.headers, (b) =>
          Array.isArray(b.messages),
        )
      },
    },
    {
      what: "history page of 50 (before a random seq)",
      request: () => {
        const u = pick(users)
        const c = pick(u.conversations)
        const before = 1 + Math.floor(rand() * c.lastSeq)
        return get(
          `${url}/api/conversations/${c.id}/messages?limit=50&before_seq=${before}`,
          u.headers,
          (b) => Array.isArray(b.messages),
        )
      },
    },
    {
      what: "conversation list of 50",
      request: () => {
        const u = pick(users)
        return get(`${url}/api/conversations?limit=50`, u.headers, (b) => Array.isArray(b.conversations ?? b))
      },
    },
  ]
  for (const w of meta.searchWords)
    phases.push({
      what: `search all conversations "${w.word}" (${w.messages} msgs)`,
      request: () => {
        const u = pick(users)
        return get(`${url}/api/messages/search?q=${w.word}&limit=50`, u.headers, (b) =>
          Array.isArray(b.messages),
        )
      },
    })
  for (const w of meta.searchWords)
    phases.push({
      what: `search in user's largest conversation "${w.word}"`,
      request: () => {
        const u = pick(users)
        return get(
          `${url}/api/messages/search?q=${w.word}&limit=50&conversation_id=${largest(u).id}`,
          u.headers,
          (b) => Array.isArray(b.messages),
        )
      },
    })
  const wanted = opts.phases?.split(",")
  for (const phase of phases.filter((p) => !wanted || wanted.some((w) => p.what.includes(w))))
    for (const c of readConcurrency) {
      await runLoad(c, 0.5, phase.request, 0) // warm-up, outside the CPU sample
      const { result, cpu } = await withCpu(pid, target, phase.request, (r) => runLoad(c, readSeconds, r, 0))
      rows.push({ target, what: phase.what, concurrency: c, result, cpu })
      print(rows.at(-1)!)
    }
}

/** One send as a random sample user to one of their conversations; true when answered 200. */
const sendOne = (url: string, users: Actor[]) => async (): Promise<boolean | string> => {
  const u = pick(users)
  const conv = pick(u.conversations)
  const r = await fetch(`${url}/api/messages`, {
    method: "POST",
    headers: u.headers,
    body: JSON.stringify({
      conversation_id: conv.id,
      content: randomText(),
      message_type: "TEXT",
      client_message_id: crypto.randomUUID(),
    }),
  })
  if (r.status !== 200) return `${r.status} ${(await r.text()).slice(0, 200)}`
  await r.arrayBuffer()
  return true
}

/** Runs `load` with a counted request and returns its result with the CPU used per request. */
async function withCpu(
  pid: number,
  target: string,
  request: () => Promise<boolean | string>,
  load: (request: () => Promise<boolean | string>) => Promise<LoadResult>,
) {
  let n = 0
  const counted = () => (n++, request())
  const server0 = cpuSeconds(pid)
  const pg0 = target === "postgres" ? await postgresCpu() : new Map<number, number>()
  const result = await load(counted)
  const per = (seconds: number) => (seconds * 1e6) / Math.max(1, n)
  const cpu: Row["cpu"] = { server: per(cpuSeconds(pid) - server0) }
  if (target === "postgres") {
    let used = 0
    for (const [backend, seconds] of await postgresCpu()) used += seconds - (pg0.get(backend) ?? 0)
    cpu.postgres = per(used)
  }
  return { result, cpu }
}

/** The working database's name while a Postgres target runs. */
let postgresWorkName = ""

/**
 * CPU seconds used so far by each backend connected to the working database (the server's pool): other
 * people's Postgres work on a shared machine stays out. A backend that ends during a phase is not counted.
 */
async function postgresCpu(): Promise<Map<number, number>> {
  const client = new pg.Client({ connectionString: postgresUrl("postgres") })
  await client.connect()
  try {
    const { rows } = await client.query<{ pid: number }>(
      "select pid from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()",
      [postgresWorkName],
    )
    const out = new Map<number, number>()
    for (const { pid } of rows)
      try {
        out.set(pid, cpuSeconds(pid))
      } catch {} // ended meanwhile
    return out
  } finally {
    await client.end()
  }
}

async function sendPhase(target: string, url: string, pid: number, users: Actor[], c: number) {
  const { result, cpu } = await withCpu(pid, target, sendOne(url, users), (r) =>
    runLoad(c, sendSeconds, r, 2),
  )
  rows.push({ target, what: "send (POST /api/messages)", concurrency: c, result, cpu })
  print(rows.at(-1)!)
}

async function sendAtRate(target: string, url: string, pid: number, users: Actor[], rate: number) {
  const { result, cpu } = await withCpu(pid, target, sendOne(url, users), (r) =>
    runRate(rate, sendSeconds, r, 2),
  )
  const what = `send (POST /api/messages), open loop at ${rate}/s offered`
  rows.push({ target, what, concurrency: "open", result, cpu })
  print(rows.at(-1)!)
}

function print(r: Row) {
  const x = r.result
  if (!x) return console.log(`${r.target} | ${r.what} | c=${r.concurrency} | ${r.note ?? ""}`)
  console.log(
    `${r.target} | ${r.what} | c=${r.concurrency} | ${fmt(x.rate, 0)}/s | p50 ${fmt(x.latency.p50)} ms | p99 ${fmt(x.latency.p99)} ms | max ${fmt(x.latency.max)} ms | n=${x.requests}${x.errors ? ` | ERRORS ${x.errors}: ${x.firstError}` : ""}${r.cpu ? ` | server CPU ${fmt(r.cpu.server, 0)} µs/req${r.cpu.postgres !== undefined ? `, postgres CPU ${fmt(r.cpu.postgres, 0)} µs/req` : ""}` : ""}`,
  )
}

/**
 * Raw bun:sqlite insert rate into `messages` with their FTS5 rows in the same transaction, on the working copy
 * (the FTS5 table is in the search database, attached: the product writes it from another thread).
 */
function sqliteBaseline(target: string, path: string, durability: "full" | "normal", meta: DatasetMeta) {
  const db = new SqliteDatabase(path, { strict: true })
  db.query("attach ? as search").run(searchDatabasePath(path))
  db.exec("PRAGMA journal_mode = WAL")
  db.exec("PRAGMA foreign_keys = ON")
  db.exec(`PRAGMA synchronous = ${durability === "full" ? "FULL" : "NORMAL"}`)
  const conv = meta.sample[0]!.conversations[0]!
  const sender = meta.sample[0]!.id
  let seq =
    (db.query("select last_seq from conversations where id = ?").get(conv.id) as any).last_seq + 1_000_000
  const insert = db.prepare(
    `insert into messages (id, conversation_id, seq, sender_id, client_message_id, content, message_type, media_url,
      thumbnail_url, audio_duration, reply_to_id, is_encrypted, is_forwarded, edited_at, deleted_at, created_at, updated_at)
     values (?, ?, ?, ?, ?, ?, 'TEXT', null, null, null, null, 0, 0, null, null, ?, ?) returning rid`,
  )
  // Search indexing in the insert's transaction (the product does it after, on another thread): the rows
  // first, then their FTS5 rows. Interleaving them costs ~6x the CPU per row (400 against 62 µs at 100 per
  // transaction on this dataset): FTS5 writes its pending rows out as a new segment before each other write
  // statement.
  const index = db.prepare("insert into search.messages_fts(rowid, body, conv) values (?, ?, ?)")
  const token = "c" + conv.id.replace(/-/g, "")
  const insertMany = (n: number) => {
    const rows: { rid: number; content: string }[] = []
    for (let i = 0; i < n; i++) {
      const now = Date.now()
      const content = randomText()
      const id = Bun.randomUUIDv7()
      const { rid } = insert.get(id, conv.id, seq++, sender, crypto.randomUUID(), content, now, now) as {
        rid: number
      }
      rows.push({ rid, content })
    }
    for (const r of rows) index.run(r.rid, r.content, token)
  }
  const measure = (what: string, perTx: number) => {
    const tx = db.transaction(() => insertMany(perTx))
    const end = performance.now() + 3000
    const t0 = performance.now()
    let n = 0
    while (performance.now() < end) {
      tx()
      n += perTx
    }
    const rate = n / ((performance.now() - t0) / 1000)
    baselines.push({ target, what, rate })
    console.log(`${target} | baseline ${what} | ${fmt(rate, 0)} rows/s`)
  }
  measure("bun:sqlite insert + FTS5 rows, 1 row per transaction", 1)
  measure("bun:sqlite insert + FTS5 rows, 100 rows per transaction", 100)
  db.close()
}

/** Raw pg insert rates into `messages` (tsv generated, GIN index) on the working copy. */
async function postgresBaseline(target: string, dbUrl: string, meta: DatasetMeta) {
  const pool = new pg.Pool({ connectionString: dbUrl, max: 8 })
  const conv = meta.sample[0]!.conversations[0]!
  const sender = meta.sample[0]!.id
  let seq = 10_000_000
  const sqlOne = `insert into messages (id, conversation_id, seq, sender_id, client_message_id, content, message_type,
    created_at, updated_at) values ($1, $2, $3, $4, $5, $6, 'TEXT', $7, $7)`
  const measure = async (what: string, connections: number, perStatement: number) => {
    const end = performance.now() + 3000
    const t0 = performance.now()
    let n = 0
    await Promise.all(
      Array.from({ length: connections }, async () => {
        while (performance.now() < end) {
          const now = Date.now()
          if (perStatement === 1) {
            await pool.query(sqlOne, [
              Bun.randomUUIDv7(),
              conv.id,
              seq++,
              sender,
              crypto.randomUUID(),
              randomText(),
              now,
            ])
          } else {
            const ids = Array.from({ length: perStatement }, () => Bun.randomUUIDv7())
            await pool.query(
              `insert into messages (id, conversation_id, seq, sender_id, client_message_id, content, message_type, created_at, updated_at)
               select id, $2, s, $3, cid, body, 'TEXT', $4, $4 from unnest($1::text[], $5::bigint[], $6::text[], $7::text[]) as v(id, s, cid, body)`,
              [
                ids,
                conv.id,
                sender,
                now,
                ids.map(() => seq++),
                ids.map(() => crypto.randomUUID()),
                ids.map(() => randomText()),
              ],
            )
          }
          n += perStatement
        }
      }),
    )
    const rate = n / ((performance.now() - t0) / 1000)
    baselines.push({ target, what, rate })
    console.log(`${target} | baseline ${what} | ${fmt(rate, 0)} rows/s`)
  }
  await measure("pg insert (tsv + GIN), autocommit, 1 connection", 1, 1)
  await measure("pg insert (tsv + GIN), autocommit, 8 connections", 8, 1)
  await measure("pg insert (tsv + GIN), 100 rows per statement, 1 connection", 1, 100)
  await pool.end()
}

async function runTarget(target: string) {
  const dialect = target.startsWith("postgres") ? "postgres" : "sqlite"
  const meta = await loadMeta(dialect, opts["pg-template"])
  if (!meta) throw new Error(`no ${dialect} dataset: run bun bench/generate-messaging.ts --db ${dialect}`)
  const users = actors(meta)
  const durability = target.endsWith("normal") ? "normal" : "full"
  let env: Record<string, string>
  let cleanup: () => Promise<void>
  let baseline: () => Promise<void>
  if (dialect === "sqlite") {
    const work = join(outDir, `work-${target}.db`)
    const files = [work, searchDatabasePath(work)]
    for (const f of files) for (const s of ["", "-wal", "-shm"]) rmSync(f + s, { force: true })
    copyFileSync(meta.location, work)
    // The search index, a database of its own (src/messages/search.indexer.ts).
    copyFileSync(searchDatabasePath(meta.location), searchDatabasePath(work))
    env = { URGE_DATABASE_URL: `sqlite:${work}`, URGE_DATABASE_DURABILITY: durability }
    baseline = async () => sqliteBaseline(target, work, durability, meta)
    cleanup = async () => {
      for (const f of files) for (const s of ["", "-wal", "-shm"]) rmSync(f + s, { force: true })
    }
  } else {
    // Per run: benches of several people may share the Postgres server.
    const name = opts["pg-work"] ?? `urge_bench_msg_work_${process.pid}`
    postgresWorkName = name
    await dropPostgresDatabase(name)
    await postgresAdmin(`create database ${name} template ${meta.location}`)
    env = { URGE_DATABASE_URL: postgresUrl(name), URGE_DATABASE_POOL_SIZE: opts["pool-size"] ?? "10" }
    baseline = () => postgresBaseline(target, postgresUrl(name), meta)
    cleanup = () => dropPostgresDatabase(name)
  }
  env.URGE_AUTH_JWT_SECRET = meta.jwtSecret
  try {
    const { url, proc } = await startServer(env)
    try {
      if (only !== "send") await readPhases(target, url, meta, users, proc.pid)
      if (only !== "reads")
        for (const c of String(opts.concurrency ?? concurrency)
          .split(",")
          .map(Number))
          await sendPhase(target, url, proc.pid, users, c)
      if (only !== "reads" && opts.rate)
        for (const rate of opts.rate.split(",").map(Number))
          await sendAtRate(target, url, proc.pid, users, rate)
    } finally {
      await stopServer(proc)
    }
    if (only !== "reads" && !opts["no-baseline"]) await baseline()
  } finally {
    await cleanup()
  }
}

console.log(`messaging bench ${new Date().toISOString()} on ${machine()}`)
for (const target of targets) await runTarget(target)
rmSync(join(outDir, "server-data"), { recursive: true, force: true })

// Markdown summary.
console.log(
  "\n| target | what | conc. | rate/s | p50 ms | p99 ms | max ms | server CPU µs/req | postgres CPU µs/req |\n|---|---|---|---|---|---|---|---|---|",
)
for (const r of rows) {
  const x = r.result!
  console.log(
    `| ${r.target} | ${r.what} | ${r.concurrency} | ${fmt(x.rate, 0)} | ${fmt(x.latency.p50)} | ${fmt(x.latency.p99)} | ${fmt(x.latency.max)} | ${r.cpu ? fmt(r.cpu.server, 0) : ""} | ${r.cpu?.postgres !== undefined ? fmt(r.cpu.postgres, 0) : ""} |${x.errors ? ` errors ${x.errors}` : ""}`,
  )
}
console.log("\n| target | baseline | rows/s |\n|---|---|---|")
for (const b of baselines) console.log(`| ${b.target} | ${b.what} | ${fmt(b.rate, 0)} |`)
if (opts.json)
  writeFileSync(
    opts.json,
    JSON.stringify({ at: new Date().toISOString(), machine: machine(), rows, baselines }, null, 1),
  )
