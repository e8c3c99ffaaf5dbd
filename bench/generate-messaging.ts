/**
 * Generates the messaging dataset: 1,000 users, 10,000 conversations (mostly DIRECT, some groups) and
 * 1,000,000 messages, written straight to the database in bulk, once; the benchmarks reuse it.
 *
 *   bun bench/generate-messaging.ts --db sqlite|postgres [--messages 1000000] [--force]
 *
 * The schema comes from the product's migrations, and the data keeps the product's invariants: per-conversation
 * `seq` 1..last_seq, `last_message_id/at` = the newest message, the sender's own `last_read_seq` at least their
 * newest message, `last_delivered_seq >= last_read_seq`, ids UUIDv7 in time order, one `message.created` feed
 * row per message (after the `member.added` rows). Search is maintained by the product itself: on SQLite its
 * search indexer catches up with the feed after the load, on Postgres `tsv` is a generated column under the GIN index.
 * Sessions for a sample of users are opened with the auth repository and signed with the dataset's secret at
 * bench time (the same functions `POST /auth/login` uses).
 */
import { rmSync } from "node:fs"
import { Kysely, PostgresDialect } from "kysely"
import pg from "pg"
import { insertSession } from "../src/auth/sessions.repository.ts"
import { hashRefreshToken, newRefreshSalt, refreshTokenFor } from "../src/auth/tokens.ts"
import { openDatabase } from "../src/db/database.ts"
import { buildSearchIndex, searchDatabasePath } from "../src/messages/search.indexer.ts"
import { migrateUp } from "../src/db/migrate.ts"
import type { Database } from "../src/db/schema.ts"
import {
  args,
  benchConfig,
  type DatasetMeta,
  dropPostgresDatabase,
  loadMeta,
  postgresAdmin,
  postgresDataName,
  postgresUrl,
  rng,
  saveMeta,
  type SampleUser,
  schemaHash,
  sqliteDataPath,
} from "./lib.ts"

const opts = args()
const dialect = (opts.db ?? "sqlite") as "sqlite" | "postgres"
if (dialect !== "sqlite" && dialect !== "postgres") throw new Error("--db sqlite|postgres")
const N_USERS = Number(opts.users ?? 1000)
const N_CONVERSATIONS = Number(opts.conversations ?? 10_000)
const N_GROUPS = Math.round(N_CONVERSATIONS * 0.05)
const N_MESSAGES = Number(opts.messages ?? 1_000_000)
const N_SAMPLE = 200

if (!opts.force && (await loadMeta(dialect))) {
  console.log(`${dialect}: dataset already generated (use --force to regenerate)`)
  process.exit(0)
}

const started = performance.now()
// The dataset's server secret: signs the sample users' access tokens (and derives their refresh tokens).
const jwtSecret = Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64url")
const rand = rng(20261124)
const int = (n: number) => Math.floor(rand() * n)
// Users are picked half uniformly, half skewed to low indexes: a few heavy users with ~50-100 conversations.
const pickUser = () => (rand() < 0.5 ? int(N_USERS) : Math.floor(N_USERS * rand() ** 1.5))

// Vocabulary of pseudo-words, drawn with a Zipf law (the most common word ~10% of messages).
const syllables =
  "ba be bi bo bu da de di do du ka ke ki ko ku la le li lo lu ma me mi mo mu na ne ni no nu ra re ri ro ru sa se si so su ta te ti to tu va ve vi vo vu za ze zi zo zu".split(
    " ",
  )
const vocabulary: string[] = []
{
  const seen = new Set<string>()
  while (vocabulary.length < 5000) {
    const n = 2 + int(3)
    let w = ""
    for (let i = 0; i < n; i++) w += syllables[int(syllables.length)]
    if (!seen.has(w)) (seen.add(w), vocabulary.push(w))
  }
}
const zipf = (() => {
  const cum = new Float64Array(vocabulary.length)
  let s = 0
  for (let r = 0; r < vocabulary.length; r++) cum[r] = s += 1 / (r + 1)
  return () => {
    const x = rand() * s
    let lo = 0
    let hi = cum.length - 1
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if (cum[mid]! < x) lo = mid + 1
      else hi = mid
    }
    return lo
  }
})()
// Search words at several frequencies (vocabulary ranks), counted while generating.
const searchRanks = [3, 30, 300, 3000]
const searchCounts = new Map(searchRanks.map((r) => [vocabulary[r]!, 0]))

// Users.
const now = Date.now() - 3600_000
const t0 = now - 90 * 86400_000
const users = Array.from({ length: N_USERS }, (_, i) => ({
  id: Bun.randomUUIDv7("hex", t0 - 86400_000 + i),
  phone: `+1999${String(1_000_000 + i).padStart(8, "0")}`,
  name: `Bench User ${i}`,
}))

// Conversations and members.
type Conv = {
  id: string
  type: "DIRECT" | "GROUP"
  members: number[]
  directKey: string | null
  createdAt: number
}
const conversations: Conv[] = []
{
  const pairs = new Set<string>()
  for (let g = 0; g < N_GROUPS; g++) {
    const size = 3 + Math.floor(rand() ** 2 * 60)
    const members = new Set<number>()
    while (members.size < size) members.add(pickUser())
    conversations.push({ id: "", type: "GROUP", members: [...members], directKey: null, createdAt: 0 })
  }
  while (conversations.length < N_CONVERSATIONS) {
    const a = pickUser()
    const b = pickUser()
    if (a === b) continue
    const key = [users[a]!.id, users[b]!.id].sort().join(" ")
    if (pairs.has(key)) continue
    pairs.add(key)
    conversations.push({ id: "", type: "DIRECT", members: [a, b], directKey: key, createdAt: 0 })
  }
  // Shuffle so groups and chats interleave in creation order; ids in creation order.
  for (let i = conversations.length - 1; i > 0; i--) {
    const j = int(i + 1)
    ;[conversations[i], conversations[j]] = [conversations[j]!, conversations[i]!]
  }
  conversations.forEach((c, i) => {
    c.createdAt = t0 - 3600_000 + i
    c.id = Bun.randomUUIDv7("hex", c.createdAt)
  })
}
const memberships = conversations.reduce((n, c) => n + c.members.length, 0)

// Messages per conversation: Zipf with exponent 0.8 over a random ranking (the busiest holds ~3.5%).
const messageConversation = new Int32Array(N_MESSAGES)
{
  const order = conversations.map((_, i) => i)
  for (let i = order.length - 1; i > 0; i--) {
    const j = int(i + 1)
    ;[order[i], order[j]] = [order[j]!, order[i]!]
  }
  const cum = new Float64Array(order.length)
  let s = 0
  for (let r = 0; r < order.length; r++) cum[r] = s += 1 / (r + 1) ** 0.8
  for (let m = 0; m < N_MESSAGES; m++) {
    const x = rand() * s
    let lo = 0
    let hi = cum.length - 1
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if (cum[mid]! < x) lo = mid + 1
      else hi = mid
    }
    messageConversation[m] = order[lo]!
  }
}

const lastSeq = new Int32Array(N_CONVERSATIONS)
const lastMessage: ({ id: string; at: number } | undefined)[] = new Array(N_CONVERSATIONS)
const lastSentSeq = new Map<string, number>() // "conv user" → seq of their newest message

type MessageRow = {
  id: string
  conversation_id: string
  seq: number
  sender_id: string
  client_message_id: string
  content: string
  message_type: string
  media_url: string | null
  created_at: number
}

/** Makes message `m` (in time order). */
function makeMessage(m: number): MessageRow {
  const ci = messageConversation[m]!
  const conv = conversations[ci]!
  const seq = ++lastSeq[ci]!
  const senderIndex = conv.members[int(conv.members.length)]!
  const sender = users[senderIndex]!
  const at = t0 + Math.floor((m * (90 * 86400_000)) / N_MESSAGES)
  const id = Bun.randomUUIDv7("hex", at)
  lastMessage[ci] = { id, at }
  lastSentSeq.set(`${ci} ${senderIndex}`, seq)
  const image = rand() < 0.06
  let content = ""
  if (!image) {
    const words: string[] = []
    const n = 3 + int(13)
    const seen = new Set<number>()
    for (let i = 0; i < n; i++) {
      const r = zipf()
      words.push(vocabulary[r]!)
      if (!seen.has(r)) {
        seen.add(r)
        const w = vocabulary[r]!
        if (searchCounts.has(w)) searchCounts.set(w, searchCounts.get(w)! + 1)
      }
    }
    content = words.join(" ")
  }
  return {
    id,
    conversation_id: conv.id,
    seq,
    sender_id: sender.id,
    client_message_id: `gen-${m}`,
    content,
    message_type: image ? "IMAGE" : "TEXT",
    media_url: image ? `https://media.example/${id}.jpg` : null,
    created_at: at,
  }
}

/** Member state at the end: mostly caught up, some unread, never below their own newest message. */
function memberState(ci: number, ui: number) {
  const last = lastSeq[ci]!
  const own = lastSentSeq.get(`${ci} ${ui}`) ?? 0
  const read = rand() < 0.7 ? last : Math.max(own, last - int(Math.min(last, 40) + 1))
  const delivered = rand() < 0.8 ? last : read
  return { last_read_seq: read, last_delivered_seq: delivered }
}

// Open the target.
let location: string
let db: Kysely<Database>
let close: () => Promise<void>
let pool: pg.Pool | null = null
if (dialect === "sqlite") {
  location = sqliteDataPath
  for (const file of [location, searchDatabasePath(location)])
    for (const suffix of ["", "-wal", "-shm"]) rmSync(file + suffix, { force: true })
  const handle = openDatabase(benchConfig({ "database.url": `sqlite:${location}`, "data.dir": "." }))
  db = handle.db
  close = handle.close
} else {
  location = postgresDataName
  await dropPostgresDatabase(location)
  await postgresAdmin(`create database ${location}`)
  const handle = openDatabase(benchConfig({ "database.url": postgresUrl(location), "data.dir": "." }))
  db = handle.db
  close = async () => {
    await handle.close()
    await pool?.end()
  }
  // The generator owns the database: no WAL flush per statement while loading.
  pool = new pg.Pool({
    connectionString: postgresUrl(location),
    max: 2,
    options: "-c synchronous_commit=off",
  })
}
await migrateUp(db)
console.log(`${dialect}: migrated ${location}`)

const phase = (name: string, since: number) =>
  console.log(`${dialect}: ${name} in ${((performance.now() - since) / 1000).toFixed(1)} s`)

// Bulk writers: SQLite through bun:sqlite prepared statements in big transactions (search is indexed after
// the load); Postgres with one INSERT … SELECT FROM unnest(arrays) per chunk.
type Column = { name: string; pgType: string }
type Writer = (table: string, columns: Column[], rows: unknown[][]) => Promise<void>
let sqlite: import("bun:sqlite").Database | null = null
const statements = new Map<string, import("bun:sqlite").Statement>()
const write: Writer = async (table, columns, rows) => {
  if (rows.length === 0) return
  if (sqlite) {
    const key = `${table}:${columns.map((c) => c.name).join(",")}`
    let st = statements.get(key)
    if (!st) {
      st = sqlite.prepare(
        `insert into ${table} (${columns.map((c) => c.name).join(", ")}) values (${columns.map(() => "?").join(", ")})`,
      )
      statements.set(key, st)
    }
    const tx = sqlite.transaction((rs: unknown[][]) => {
      for (const r of rs) st!.run(...(r as any[]))
    })
    tx(rows)
    return
  }
  const arrays = columns.map((_, k) => rows.map((r) => r[k]))
  await pool!.query(
    `insert into ${table} (${columns.map((c) => c.name).join(", ")})
     select * from unnest(${columns.map((c, k) => `$${k + 1}::${c.pgType}[]`).join(", ")})`,
    arrays,
  )
}
if (dialect === "sqlite") {
  // The generator owns the file: no fsync while loading (the product's durability applies when it serves).
  const { Database } = await import("bun:sqlite")
  await close()
  sqlite = new Database(location, { strict: true })
  sqlite.exec("PRAGMA journal_mode = WAL")
  sqlite.exec("PRAGMA synchronous = OFF")
  sqlite.exec("PRAGMA foreign_keys = ON")
  sqlite.exec("PRAGMA cache_size = -262144")
  close = async () => {
    sqlite!.exec("PRAGMA wal_checkpoint(TRUNCATE)")
    sqlite!.close()
  }
}

const text = (name: string): Column => ({ name, pgType: "text" })
const big = (name: string): Column => ({ name, pgType: "bigint" })

let t = performance.now()
await write(
  "users",
  [
    text("id"),
    text("phone_number"),
    text("display_name"),
    text("role"),
    big("created_at"),
    big("updated_at"),
  ],
  users.map((u, i) => [u.id, u.phone, u.name, "REGULAR", t0 - 86400_000 + i, t0 - 86400_000 + i]),
)
for (let i = 0; i < conversations.length; i += 2000)
  await write(
    "conversations",
    [
      text("id"),
      text("type"),
      text("name"),
      text("created_by"),
      text("direct_key"),
      big("created_at"),
      big("updated_at"),
    ],
    conversations
      .slice(i, i + 2000)
      .map((c, k) => [
        c.id,
        c.type,
        c.type === "GROUP" ? `Group ${i + k}` : null,
        users[c.members[0]!]!.id,
        c.directKey,
        c.createdAt,
        c.createdAt,
      ]),
  )
// The feed starts with the member.added rows, as createConversation appends them.
{
  const rows: unknown[][] = []
  for (const c of conversations)
    for (const ui of c.members)
      rows.push([c.id, "member.added", JSON.stringify({ user_id: users[ui]!.id }), c.createdAt])
  for (let i = 0; i < rows.length; i += 5000)
    await write(
      "changes",
      [text("conversation_id"), text("kind"), text("data"), big("created_at")],
      rows.slice(i, i + 5000),
    )
}
phase(`${N_USERS} users, ${N_CONVERSATIONS} conversations (${N_GROUPS} groups)`, t)

t = performance.now()
const messageColumns = [
  text("id"),
  text("conversation_id"),
  { name: "seq", pgType: "bigint" },
  text("sender_id"),
  text("client_message_id"),
  text("content"),
  text("message_type"),
  text("media_url"),
  big("created_at"),
  big("updated_at"),
]
const CHUNK = dialect === "sqlite" ? 20_000 : 10_000
for (let m = 0; m < N_MESSAGES; m += CHUNK) {
  const batch: MessageRow[] = []
  for (let k = m; k < Math.min(N_MESSAGES, m + CHUNK); k++) batch.push(makeMessage(k))
  await write(
    "messages",
    messageColumns,
    batch.map((r) => [
      r.id,
      r.conversation_id,
      r.seq,
      r.sender_id,
      r.client_message_id,
      r.content,
      r.message_type,
      r.media_url,
      r.created_at,
      r.created_at,
    ]),
  )
  await write(
    "changes",
    [text("conversation_id"), text("kind"), text("message_id"), big("created_at")],
    batch.map((r) => [r.conversation_id, "message.created", r.id, r.created_at]),
  )
  if ((m / CHUNK) % 10 === 9) {
    const s = (performance.now() - t) / 1000
    console.log(`${dialect}: ${m + batch.length} messages, ${Math.round((m + batch.length) / s)}/s`)
  }
}
phase(`${N_MESSAGES} messages (with search index and feed rows)`, t)

t = performance.now()
{
  const rows: unknown[][] = []
  conversations.forEach((c, ci) =>
    c.members.forEach((ui, k) => {
      const s = memberState(ci, ui)
      rows.push([
        c.id,
        users[ui]!.id,
        c.type === "GROUP" && k === 0 ? "FOUNDER" : "MEMBER",
        c.createdAt,
        s.last_read_seq,
        s.last_delivered_seq,
        c.createdAt,
      ])
    }),
  )
  for (let i = 0; i < rows.length; i += 5000)
    await write(
      "conversation_members",
      [
        text("conversation_id"),
        text("user_id"),
        text("role"),
        big("joined_at"),
        big("last_read_seq"),
        big("last_delivered_seq"),
        big("updated_at"),
      ],
      rows.slice(i, i + 5000),
    )
}
// Conversations' last_seq and last message, as the send transaction leaves them.
{
  const rows = conversations.map((c, ci) => [
    c.id,
    lastSeq[ci]!,
    lastMessage[ci]?.id ?? null,
    lastMessage[ci]?.at ?? null,
    lastMessage[ci]?.at ?? c.createdAt,
  ])
  if (sqlite) {
    const st = sqlite.prepare(
      "update conversations set last_seq = ?2, last_message_id = ?3, last_message_at = ?4, updated_at = ?5 where id = ?1",
    )
    sqlite.transaction(() => {
      for (const r of rows) st.run(...(r as [string, number, string | null, number | null, number]))
    })()
  } else {
    for (let i = 0; i < rows.length; i += 5000) {
      const chunk = rows.slice(i, i + 5000)
      await pool!.query(
        `update conversations c set last_seq = v.s, last_message_id = v.m, last_message_at = v.a, updated_at = v.u
         from unnest($1::text[], $2::bigint[], $3::text[], $4::bigint[], $5::bigint[]) as v(id, s, m, a, u)
         where c.id = v.id`,
        [0, 1, 2, 3, 4].map((k) => chunk.map((r) => r[k])),
      )
    }
  }
}
phase(`${memberships} memberships and conversation heads`, t)

// Sessions for a sample of users, through the auth repository (as login opens them).
t = performance.now()
let sessionDb: Kysely<Database>
let closeSessionDb: () => Promise<void>
if (sqlite) {
  const { BunSqliteDialect } = await import("kysely-bun-sqlite")
  sessionDb = new Kysely<Database>({ dialect: new BunSqliteDialect({ database: sqlite }) })
  closeSessionDb = async () => {}
} else {
  sessionDb = new Kysely<Database>({ dialect: new PostgresDialect({ pool: pool! }) })
  closeSessionDb = async () => {}
}
const byUser = new Map<number, number[]>()
conversations.forEach((c, ci) => c.members.forEach((ui) => byUser.set(ui, [...(byUser.get(ui) ?? []), ci])))
const sample: SampleUser[] = []
for (let ui = 0; ui < N_SAMPLE; ui++) {
  const sessionId = Bun.randomUUIDv7()
  const salt = newRefreshSalt()
  await insertSession(sessionDb, {
    id: sessionId,
    user_id: users[ui]!.id,
    refresh_token_hash: hashRefreshToken(refreshTokenFor(jwtSecret, sessionId, salt)),
    refresh_salt: salt,
    device_name: "bench",
    platform: "bench",
    ip: null,
    now: Date.now(),
    expires_at: Date.now() + 365 * 86400_000,
  })
  sample.push({
    id: users[ui]!.id,
    role: "REGULAR",
    sessionId,
    conversations: (byUser.get(ui) ?? []).map((ci) => ({ id: conversations[ci]!.id, lastSeq: lastSeq[ci]! })),
  })
}
await closeSessionDb()
phase(`${N_SAMPLE} sessions`, t)

if (sqlite) {
  // SQLite search lives in a database of its own (src/messages/search.indexer.ts): built here with the
  // product's own indexing, as a server started on this data would build it.
  t = performance.now()
  sqlite.close()
  buildSearchIndex(location)
  sqlite = new (await import("bun:sqlite")).Database(location, { strict: true })
  phase("search index", t)
}

t = performance.now()
if (sqlite) {
  // What the product leaves: no ANALYZE (sqlite_stat1) unless an operator runs it.
  sqlite.exec("PRAGMA wal_checkpoint(TRUNCATE)")
} else {
  // Autovacuum would analyze after such a load; do it now so plans are the steady-state ones.
  await pool!.query("vacuum analyze")
}
phase("checkpoint/analyze", t)
await close()

let largest = 0
for (let ci = 1; ci < N_CONVERSATIONS; ci++) if (lastSeq[ci]! > lastSeq[largest]!) largest = ci
const meta: DatasetMeta = {
  dialect,
  schemaHash: schemaHash(),
  location,
  jwtSecret,
  generatedAt: new Date().toISOString(),
  generationSeconds: Math.round((performance.now() - started) / 1000),
  counts: {
    users: N_USERS,
    conversations: N_CONVERSATIONS,
    groups: N_GROUPS,
    memberships,
    messages: N_MESSAGES,
  },
  largestConversation: { id: conversations[largest]!.id, messages: lastSeq[largest]! },
  sample,
  searchWords: [...searchCounts].map(([word, messages]) => ({ word, messages })),
}
saveMeta(meta)
console.log(
  `${dialect}: done in ${meta.generationSeconds} s; largest conversation ${meta.largestConversation.messages} messages; search words ${meta.searchWords.map((w) => `${w.word}(${w.messages})`).join(" ")}`,
)
