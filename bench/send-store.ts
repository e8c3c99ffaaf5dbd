/**
 * The send batch's store alone (`storeSends`, no HTTP), on a copy of the Postgres messaging dataset: batches of
 * fresh sends by the sample users into their own conversations, one batch at a time as the write batcher runs
 * them. Prints, per message, the CPU of this process (the pg client and the batch's JS), of the database's
 * backends and of Postgres' shared processes (WAL writer…), so it stays comparable on a busy machine.
 *
 *   bun bench/send-store.ts [--batch 16,64] [--batches 300] [--rounds 2] [--pg-work urge_bench_send_store]
 */
import { readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { createDeps } from "../src/deps.ts"
import { createLogger } from "../src/logger.ts"
import { type StoreItem, storeSends } from "../src/messages/send.store.ts"
import {
  args,
  benchConfig,
  dropPostgresDatabase,
  fmt,
  loadMeta,
  outDir,
  postgresAdmin,
  postgresUrl,
  rng,
} from "./lib.ts"

const opts = args()
const sizes = (opts.batch ?? "16,64").split(",").map(Number)
const batches = Number(opts.batches ?? 300)
const rounds = Number(opts.rounds ?? 2)
const name = opts["pg-work"] ?? "urge_bench_send_store"

const meta = await loadMeta("postgres")
if (!meta) throw new Error("no postgres dataset: run bun bench/generate-messaging.ts --db postgres")
await dropPostgresDatabase(name)
await postgresAdmin(`create database ${name} template ${meta.location}`)
const deps = createDeps(
  benchConfig({
    "database.url": postgresUrl(name),
    "data.dir": join(outDir, "send-store-data"),
    "auth.jwt_secret": meta.jwtSecret,
  }),
  { logger: createLogger("error") },
)

const ticks = 100 // USER_HZ
const procCpu = (pid: number | string) => {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ")
  return (Number(f[11]) + Number(f[12])) / ticks
}
/** CPU of the work database's backends, and of Postgres' shared processes (WAL writer, checkpointer…: other
 * databases' work lands there too on a shared machine); not other databases' backends. */
const postgresCpu = () => {
  let backends = 0
  let shared = 0
  for (const pid of readdirSync("/proc").filter((d) => /^\d+$/.test(d)))
    try {
      if (readFileSync(`/proc/${pid}/comm`, "utf8").trim() !== "postgres") continue
      const db = /^postgres: \S+: \S+ (\S+) \S+\(\d+\)/.exec(
        readFileSync(`/proc/${pid}/cmdline`, "utf8"),
      )?.[1]
      if (db === name) backends += procCpu(pid)
      else if (db === undefined) shared += procCpu(pid)
    } catch {} // ended meanwhile
  return { backends, shared }
}
const selfCpu = () => {
  const u = process.cpuUsage()
  return (u.user + u.system) / 1e6
}

const random = rng(7)
const pairs = meta.sample.flatMap((u) => u.conversations.map((c) => ({ u: u.id, c: c.id })))
let serial = 0
const item = (): StoreItem => {
  const p = pairs[Math.floor(random() * pairs.length)]!
  return {
    conversationId: p.c,
    senderId: p.u,
    clientMessageId: `store-${process.pid}-${serial++}`,
    content: `bench message ${serial} with a few words to index`,
    type: "TEXT",
    mediaUrl: null,
    thumbnailUrl: null,
    audioDuration: null,
    replyToId: null,
    isEncrypted: false,
    isForwarded: false,
  }
}

try {
  // Warm-up: every pooled connection prepares its statements.
  for (let i = 0; i < 20; i++) await storeSends(deps, Array.from({ length: 16 }, item), Date.now())
  console.log(
    "| batch | messages | wall ms per batch | client CPU µs/msg | postgres backends CPU µs/msg | postgres shared processes µs/msg | load |",
  )
  console.log("|---|---|---|---|---|---|---|")
  for (let r = 0; r < rounds; r++)
    for (const size of sizes) {
      const work = Array.from({ length: batches }, () => Array.from({ length: size }, item))
      const c0 = selfCpu()
      const p0 = postgresCpu()
      const t0 = performance.now()
      for (const b of work) {
        const { outcomes } = await storeSends(deps, b, Date.now())
        if (outcomes.some((o) => o.kind !== "stored"))
          throw new Error(`not stored: ${JSON.stringify(outcomes)}`)
      }
      const wall = performance.now() - t0
      const p1 = postgresCpu()
      const n = size * batches
      const per = (seconds: number) => fmt((seconds * 1e6) / n, 0)
      const load = readFileSync("/proc/loadavg", "utf8").split(" ")[0]
      console.log(
        `| ${size} | ${n} | ${fmt(wall / batches)} | ${per(selfCpu() - c0)} | ${per(p1.backends - p0.backends)} | ${per(p1.shared - p0.shared)} | ${load} |`,
      )
    }
} finally {
  await deps.close()
  await dropPostgresDatabase(name)
}
