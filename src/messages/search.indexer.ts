import type { Database as SqliteDatabase, Statement } from "bun:sqlite"
import type { DatabaseHandle } from "../db/database.ts"
import type { DomainEvents } from "../events.ts"
import type { Logger } from "../logger.ts"

/**
 * SQLite search indexing, after the send instead of inside it (migration 0008). FTS5 writes its pending rows
 * out as a new segment, in each of its four indexes (words, 2-, 3- and 4-letter prefixes), at commit and
 * before every other write statement of the transaction: indexed by a trigger inside the send batch, each
 * message became segments of its own (the feed row written after it flushed them), about a quarter of the
 * write CPU at live chat's batch sizes. Here one transaction of FTS5 writes only indexes everything sent in
 * the last `delayMs`. The indexer follows the change feed (`changes`, commit order) from the position it keeps in
 * `search_index_progress`, in the same transaction as the rows it writes, so a crash loses nothing and
 * indexes nothing twice. Rows are written with `insert or replace` / `delete` by rowid, so replaying a
 * change is harmless.
 *
 * A search calls `catchUp()` first: it always sees every message committed before it, as when the index
 * was written inside the send. Postgres indexes in the row itself (a generated tsvector): nothing to do.
 */
export type SearchIndexer = {
  /** Indexes every change committed so far (a failure is logged, not thrown). */
  catchUp(): Promise<void>
  /** Indexes in the background, `delayMs` after messages are announced, and once now (after a restart). */
  start(): void
  /** Stops the background indexing (and waits for a transaction in progress). */
  stop(): Promise<void>
}

/** How long announced messages wait to be indexed together; a search never waits for it (catchUp). */
const delayMs = 50
/** Feed rows per indexing transaction: bounds how long one holds the connection (~10 µs per message). */
const chunk = 1000

const noop: SearchIndexer = { catchUp: async () => {}, start() {}, stop: async () => {} }

type FeedRow = {
  pos: number
  kind: string
  rid: number | null
  content: string | null
  message_type: string | null
  deleted_at: number | null
  conversation_id: string | null
}

export function createSearchIndexer(
  database: DatabaseHandle,
  events: DomainEvents,
  logger: Logger,
  durability: "full" | "normal",
): SearchIndexer {
  const s = database.sqlite
  if (!s) return noop
  let statements: ReturnType<typeof prepare> | undefined
  let indexedPos: number | undefined
  let running: Promise<void> | undefined
  let timer: ReturnType<typeof setTimeout> | undefined
  let unsubscribe: (() => void) | undefined

  // Prepared on first use: the table exists only once the migrations ran.
  const prepared = () => (statements ??= prepare(s))
  const pending = () => {
    const st = prepared()
    indexedPos ??= st.progress.get()!.pos
    const latest = st.latest.get()?.pos ?? 0
    return latest > indexedPos
  }

  /** One transaction: up to `chunk` feed rows. Returns whether more remain. */
  const indexChunk = () =>
    database.db.connection().execute(async () => {
      const st = prepared()
      const rows = st.feed.all(st.progress.get()!.pos, chunk)
      if (rows.length === 0) return false
      // Derived data: its commit needs no fsync of its own. A power loss can only take the index rows and
      // the progress row back together, and the next fsynced commit makes both durable anyway.
      if (durability === "full") s.exec("PRAGMA synchronous = NORMAL")
      s.exec("begin immediate")
      try {
        for (const row of rows) {
          if (row.rid === null) continue
          if (row.message_type === "TEXT" && row.deleted_at === null) {
            if (row.kind !== "message.deleted")
              st.replace.run(row.rid, row.content!, "c" + row.conversation_id!.replace(/-/g, ""))
          } else if (row.kind !== "message.created") st.remove.run(row.rid)
        }
        const last = rows[rows.length - 1]!.pos
        st.advance.run(last)
        s.exec("commit")
        indexedPos = last
      } catch (error) {
        if (s.inTransaction) s.exec("rollback")
        throw error
      } finally {
        if (durability === "full") s.exec("PRAGMA synchronous = FULL")
      }
      return rows.length === chunk
    })

  const run = () =>
    (running ??= (async () => {
      try {
        while (await indexChunk()) await new Promise((resolve) => setImmediate(resolve))
      } finally {
        running = undefined
      }
    })())
  // A failed run is logged, never thrown: the next one takes up from the stored position.
  const runLogged = () =>
    run().catch((error) => logger.error("search indexing failed", { error: String(error) }))

  const schedule = () => {
    timer ??= setTimeout(() => {
      timer = undefined
      void runLogged()
    }, delayMs)
  }

  return {
    async catchUp() {
      while (running) await running.catch(() => {})
      // A search is answered from the index as it is rather than failed (a lock held past busy_timeout by
      // another process, say).
      if (pending()) await runLogged()
    },
    start() {
      unsubscribe ??= events.subscribe((event) => {
        if (event.type === "conversation" && event.name.startsWith("message:")) schedule()
      })
      schedule()
    },
    async stop() {
      unsubscribe?.()
      unsubscribe = undefined
      clearTimeout(timer)
      timer = undefined
      await running?.catch(() => {})
    },
  }
}

function prepare(s: SqliteDatabase) {
  return {
    progress: s.query<{ pos: number }, []>("select pos from search_index_progress where id = 0"),
    latest: s.query<{ pos: number }, []>("select pos from changes order by pos desc limit 1"),
    // Every feed row (so the position passes the others too); the message only for the kinds that change
    // what is searchable. A message deleted with its conversation has no row here: the delete trigger of
    // 0003 took it out of the index.
    feed: s.query<FeedRow, [number, number]>(
      `select c.pos, c.kind, m.rid, m.content, m.message_type, m.deleted_at, m.conversation_id
       from changes c left join messages m
         on m.id = c.message_id and c.kind in ('message.created', 'message.updated', 'message.deleted')
       where c.pos > ? order by c.pos limit ?`,
    ),
    replace: s.query("insert or replace into messages_fts(rowid, body, conv) values (?, ?, ?)"),
    remove: s.query("delete from messages_fts where rowid = ?"),
    advance: s.query("update search_index_progress set pos = ? where id = 0"),
  } satisfies Record<string, Statement<any, any>>
}
