import { Database as SqliteDatabase } from "bun:sqlite"
import { CompiledQuery } from "kysely"
import { type DatabaseHandle, mmapBytes } from "../db/database.ts"
import type { DomainEvents } from "../events.ts"
import type { Logger } from "../logger.ts"

/**
 * SQLite search: an FTS5 index in a database file of its own (`<name>-search.db` beside the database), written
 * by a worker thread. FTS5 keeps its index as segments it merges as they pile up, and a merge rewrites whole
 * terms: a common word's postings are megabytes. Written on the event loop (as after migration 0008) an
 * indexing commit cost 0.4 ms at the median but 4–27 ms when it merged (up to 0.5 s), stalls every live
 * delivery waited behind; written into the main file from another thread, it would hold the write lock every
 * send needs for as long. In a file of its own, written off the event loop, it holds neither.
 *
 * The worker follows the change feed (`changes`, commit order) from the position it keeps in the search
 * database, in the same transaction as the rows it writes, so a crash loses nothing and indexes nothing twice
 * (`insert or replace` / `delete` by rowid: replaying a change is harmless). A deleted group's `group.deleted`
 * rows take its messages out (the cascade leaves no feed row per message). The index is derived data: it is
 * not backed up, and it is rebuilt from the messages when its layout changes or when it has indexed past the
 * end of the feed (a restored database).
 *
 * A search first waits for everything committed before it to be indexed (`catchUp`), so it sees every
 * message as when the index was written inside the send; then it reads through its own read-only connection,
 * where the index is the attached schema `search` beside the messages (`main`). Postgres indexes in the row
 * itself (a generated tsvector): nothing to do. An in-memory SQLite database (no file to share with a
 * worker) is indexed on the event loop, into an attached in-memory `search`.
 */
export type SearchIndexer = {
  /** Indexes every change committed so far (a failure is logged, not thrown: the search uses the index as it is). */
  catchUp(): Promise<void>
  /** Rows of a read-only query over `search.messages_fts` and the `main` tables (SQLite only). */
  read<Row>(sql: string, params: unknown[]): Promise<Row[]>
  /** Indexes in the background, `delayMs` after messages are announced, and once now (after a restart). */
  start(): void
  /** Stops the background indexing and the worker (a later `catchUp` starts it again). */
  stop(): Promise<void>
  /**
   * The index's segments when last counted (after indexing and after merging). Each `conv` token of a search
   * costs FTS5 a seek in every segment: the search sizes its scan by this.
   */
  segments(): number
}

/** The search database of the SQLite database at `path`. */
export const searchDatabasePath = (path: string) => `${path.replace(/\.db$/, "")}-search.db`

/** The index's layout; a search database of another version is rebuilt. */
const searchVersion = 1
/** How long announced messages wait to be indexed together (a search never waits for it: catchUp). */
const delayMs = 50
/** Feed rows per indexing transaction. */
const chunk = 1000
/** How long a search waits for the index to catch up before it answers from the index as it is (a rebuild). */
const catchUpWaitMs = 5000
/** How long the worker must have had nothing to index before it merges the index's segments. */
const mergeIdleMs = 1000
/** Leaf pages per merge step (FTS5 finishes the term it is in: a common word's postings take one step). */
const mergeStepPages = 64

const noop: SearchIndexer = {
  catchUp: async () => {},
  read: async () => [],
  start() {},
  stop: async () => {},
  segments: () => 1,
}

// ---------------------------------------------------------------------------------------------------------
// The next five functions also run in the worker, as their source text: no imports, no outer references.

/**
 * The segments of the index: one seek per segment in FTS5's shadow table `messages_fts_idx` (one row per leaf
 * page, primary key (segid, term)).
 */
function countSegments(conn: SqliteDatabase): number {
  const next = conn.query("select segid from search.messages_fts_idx where segid > ? order by segid limit 1")
  let n = 0
  for (
    let row = next.get(-1) as { segid: number } | null;
    row;
    row = next.get(row.segid) as { segid: number } | null
  )
    n++
  return Math.max(n, 1)
}

/**
 * Creates the search schema on `conn` (`main`: the messages; `search`: the search database), or rebuilds it
 * empty when its layout is another version or it indexed past the feed's end. Returns the position indexed.
 */
function openSearchSchema(conn: SqliteDatabase, version: number): number {
  const current = (conn.query("pragma search.user_version").get() as { user_version: number }).user_version
  const top = (conn.query("select coalesce(max(pos), 0) as pos from main.changes").get() as { pos: number })
    .pos
  if (current === version) {
    const { pos } = conn.query("select pos from search.progress where id = 0").get() as { pos: number }
    if (pos <= top) return pos
  }
  // Never `begin immediate` here: it would take the write lock of `main` too.
  conn.exec("begin")
  try {
    conn.exec("drop table if exists search.messages_fts")
    conn.exec("drop table if exists search.progress")
    // Contentless, keyed by messages.rid; `conv` is the conversation as one token ("c" + hex), so a search in
    // one conversation, or across the caller's, is answered by the index itself. prefix='2 3 4': the word
    // being typed is a prefix term (see migration 0005).
    conn.exec(`create virtual table search.messages_fts using fts5(body, conv, content='', contentless_delete=1,
      prefix='2 3 4', tokenize='unicode61 remove_diacritics 2')`)
    conn.exec("create table search.progress (id integer primary key check (id = 0), pos integer not null)")
    conn.exec("insert into search.progress (id, pos) values (0, 0)")
    conn.exec(`pragma search.user_version = ${version}`)
    conn.exec("commit")
  } catch (error) {
    if (conn.inTransaction) conn.exec("rollback")
    throw error
  }
  return 0
}

/** Indexes up to `limit` feed rows past the stored position, in one transaction. Returns the position reached. */
function indexFeed(conn: SqliteDatabase, limit: number): { pos: number; more: boolean } {
  const indexed = (conn.query("select pos from search.progress where id = 0").get() as { pos: number }).pos
  const rows = conn
    .query(
      // Every feed row (so the position passes the others too); the message only for the kinds that change
      // what is searchable.
      `select c.pos, c.kind, c.conversation_id as cid, m.rid, m.content, m.message_type, m.deleted_at,
         m.conversation_id
       from main.changes c left join main.messages m
         on m.id = c.message_id and c.kind in ('message.created', 'message.updated', 'message.deleted')
       where c.pos > ? order by c.pos limit ?`,
    )
    .all(indexed, limit) as {
    pos: number
    kind: string
    cid: string | null
    rid: number | null
    content: string | null
    message_type: string | null
    deleted_at: number | null
    conversation_id: string | null
  }[]
  if (rows.length === 0) return { pos: indexed, more: false }
  const token = (id: string) => "c" + id.replace(/-/g, "").toLowerCase()
  const replace = conn.query("insert or replace into search.messages_fts(rowid, body, conv) values (?, ?, ?)")
  const remove = conn.query("delete from search.messages_fts where rowid = ?")
  const ofConversation = conn.query("select rowid from search.messages_fts where messages_fts match ?")
  const groupsDeleted = new Set<string>()
  conn.exec("begin")
  try {
    for (const row of rows) {
      if (row.kind === "group.deleted") {
        if (row.cid === null || groupsDeleted.has(row.cid)) continue
        groupsDeleted.add(row.cid)
        for (const { rowid } of ofConversation.all(`conv : ${token(row.cid)}`) as { rowid: number }[])
          remove.run(rowid)
      } else if (row.rid === null) continue
      else if (row.message_type === "TEXT" && row.deleted_at === null) {
        if (row.kind !== "message.deleted") replace.run(row.rid, row.content, token(row.conversation_id!))
      } else if (row.kind !== "message.created") remove.run(row.rid)
    }
    const pos = rows[rows.length - 1]!.pos
    conn.query("update search.progress set pos = ? where id = 0").run(pos)
    conn.exec("commit")
    return { pos, more: rows.length === limit }
  } catch (error) {
    if (conn.inTransaction) conn.exec("rollback")
    throw error
  }
}

/**
 * One step of FTS5's incremental merge with `usermerge = 2` (any level of the index holding two segments is
 * merged into the next; up to `pages` leaf pages written, but a term is never split: a common word's postings
 * take one step of their own). Returns whether there was anything to merge. `usermerge` is a setting FTS5 keeps in
 * the index (it only applies to this command), set by `mergeSetting` before a round. Run until it returns false, the
 * index is left with one segment per level, a few on 1M messages, instead of the 8–30 that FTS5's automerge
 * leaves as it indexes (4 segments of a level merged into one of the next).
 */
function mergeStep(conn: SqliteDatabase, pages: number): boolean {
  const changes = conn.query("select total_changes() as n")
  const before = (changes.get() as { n: number }).n
  conn.query("insert into search.messages_fts(messages_fts, rank) values ('merge', ?)").run(pages)
  // Fewer than two rows written: nothing was left to merge.
  return (changes.get() as { n: number }).n - before >= 2
}

const mergeSetting = "insert into search.messages_fts(messages_fts, rank) values ('usermerge', 2)"

/** The worker: opens its connection on `start`, indexes to the feed's end on each `index`, closes on `stop`. */
function searchWorker(
  Database: typeof SqliteDatabase,
  open: typeof openSearchSchema,
  index: typeof indexFeed,
  segments: typeof countSegments,
  mergeOnce: typeof mergeStep,
) {
  let conn: SqliteDatabase | null = null
  let start: {
    path: string
    searchPath: string
    busyTimeout: number
    version: number
    chunk: number
    mergeIdleMs: number
    mergeStepPages: number
    mergeSetting: string
  }
  let mergeTimer: ReturnType<typeof setTimeout> | undefined
  // Bumped by every message: a merge in progress stops after its current step.
  let round = 0
  // Opened on the first message, and again after a failure (another process holding a lock, say).
  const connection = () => {
    if (conn) return conn
    const c = new Database(start.path)
    try {
      c.exec(`pragma busy_timeout = ${start.busyTimeout}`)
      c.query("attach ? as search").run(start.searchPath)
      c.exec("pragma search.journal_mode = WAL")
      // Derived data: a power loss can only take index rows and their position back together.
      c.exec("pragma search.synchronous = NORMAL")
      open(c, start.version)
    } catch (error) {
      c.close(false)
      throw error
    }
    return (conn = c)
  }
  // Idle time: FTS5's incremental merge with usermerge = 2 (any level holding two segments is merged into the
  // next) until it finds nothing to merge, one step per macrotask so that an `index` message comes first.
  const merge = () => {
    const mine = ++round
    const c = connection()
    c.exec(start.mergeSetting)
    const next = () => {
      if (mine !== round) return
      try {
        if (!mergeOnce(c, start.mergeStepPages)) return postMessage({ type: "merged", segments: segments(c) })
        setTimeout(next, 0)
      } catch (error) {
        postMessage({ type: "merge failed", error: String(error) })
      }
    }
    next()
  }
  const mergeLater = () => {
    clearTimeout(mergeTimer)
    mergeTimer = setTimeout(() => {
      try {
        merge()
      } catch (error) {
        postMessage({ type: "merge failed", error: String(error) })
      }
    }, start.mergeIdleMs)
  }
  ;(globalThis as unknown as { onmessage: (event: MessageEvent) => void }).onmessage = (event) => {
    const message = event.data
    round++
    clearTimeout(mergeTimer)
    try {
      if (message.type === "start") {
        start = message
        const pos = (
          connection().query("select pos from search.progress where id = 0").get() as { pos: number }
        ).pos
        postMessage({ type: "indexed", pos, segments: segments(connection()) })
      }
      if (message.type === "start" || message.type === "index") {
        let step = index(connection(), start.chunk)
        while (step.more) step = index(connection(), start.chunk)
        postMessage({ type: "indexed", pos: step.pos, segments: segments(connection()) })
        mergeLater()
      } else if (message.type === "stop") {
        conn?.close(false)
        conn = null
        postMessage({ type: "stopped" })
      }
    } catch (error) {
      postMessage({ type: "failed", error: String(error) })
    }
  }
}
// ---------------------------------------------------------------------------------------------------------

// A blob, so the single-file binary needs no entry point of its own (as for the WAL checkpointer). Niced (this
// thread only): on a busy machine indexing takes what CPU the event loop leaves.
const workerSource = `try { require("node:os").setPriority(10) } catch {}
const { Database } = require("bun:sqlite")
const openSearchSchema = ${openSearchSchema.toString()}
const indexFeed = ${indexFeed.toString()}
const countSegments = ${countSegments.toString()}
const mergeStep = ${mergeStep.toString()}
;(${searchWorker.toString()})(Database, openSearchSchema, indexFeed, countSegments, mergeStep)`

/** Indexes the whole feed of the SQLite database at `path` into its search database, here (the bench's generator). */
export function buildSearchIndex(path: string): number {
  const conn = new SqliteDatabase(path)
  try {
    conn.query("attach ? as search").run(searchDatabasePath(path))
    conn.exec("pragma search.journal_mode = WAL")
    openSearchSchema(conn, searchVersion)
    let step = indexFeed(conn, chunk)
    while (step.more) step = indexFeed(conn, chunk)
    // Merged as a server merges it when idle.
    conn.exec(mergeSetting)
    while (mergeStep(conn, mergeStepPages));
    return step.pos
  } finally {
    conn.close(false)
  }
}

export function createSearchIndexer(
  database: DatabaseHandle,
  events: DomainEvents,
  logger: Logger,
  busyTimeout: number,
): SearchIndexer {
  const s = database.sqlite
  if (!s) return noop
  const inMemory = database.location === ":memory:"
  let worker: Worker | null = null
  /** Settles once the worker has opened (or failed to open) the search database. */
  let opened: Promise<void> | null = null
  let reader: SqliteDatabase | null = null
  let indexedPos = -1
  let segmentCount = 1
  let waiters: { pos: number; resolve: () => void }[] = []
  let timer: ReturnType<typeof setTimeout> | undefined
  let unsubscribe: (() => void) | undefined

  const settle = (all: boolean) => {
    const due = waiters.filter((w) => all || w.pos <= indexedPos)
    waiters = waiters.filter((w) => !due.includes(w))
    for (const w of due) w.resolve()
  }

  const startWorker = () => {
    if (worker) return opened!
    const w = new Worker(URL.createObjectURL(new Blob([workerSource], { type: "application/javascript" })))
    worker = w
    w.unref()
    opened = new Promise<void>((resolve) => {
      w.onmessage = (event: MessageEvent) => {
        const message = event.data
        if (typeof message.segments === "number") segmentCount = message.segments
        if (message.type === "merged") return
        // Idle time's work: the index stays as it is, searches go on.
        if (message.type === "merge failed")
          return logger.warn("search index merge failed", { error: message.error })
        if (message.type === "indexed") indexedPos = message.pos
        // The search answers from the index as it is (another process may hold the search database's lock).
        else if (message.type === "failed") logger.error("search indexing failed", { error: message.error })
        resolve()
        settle(message.type === "failed")
      }
    })
    w.postMessage({
      type: "start",
      path: database.location,
      searchPath: searchDatabasePath(database.location),
      busyTimeout,
      version: searchVersion,
      chunk,
      mergeIdleMs,
      mergeStepPages,
      mergeSetting,
    })
    return opened
  }

  // In memory: the same functions on the server's connection (Kysely's, held so no transaction interleaves).
  const indexHere = async () => {
    try {
      await database.db.connection().execute(async () => {
        if (indexedPos < 0) {
          s.exec("attach ':memory:' as search")
          indexedPos = openSearchSchema(s, searchVersion)
        }
        let step = indexFeed(s, chunk)
        while (step.more) step = indexFeed(s, chunk)
        indexedPos = step.pos
        segmentCount = countSegments(s)
      })
    } catch (error) {
      logger.error("search indexing failed", { error: String(error) })
    }
  }

  // The feed's committed end: through Kysely while one of its transactions is open on the connection (its rows
  // are not committed, and the worker would never see them).
  const latestPos = async () => {
    const sql = "select coalesce(max(pos), 0) as pos from changes"
    if (!s.inTransaction) return (s.query(sql).get() as { pos: number }).pos
    return Number((await database.db.executeQuery<{ pos: number }>(CompiledQuery.raw(sql))).rows[0]!.pos)
  }

  const index = () => {
    if (inMemory) return void indexHere()
    void startWorker().then(() => worker?.postMessage({ type: "index" }))
  }

  const schedule = () => {
    timer ??= setTimeout(() => {
      timer = undefined
      index()
    }, delayMs)
  }

  return {
    async catchUp() {
      if (inMemory) return indexHere()
      await startWorker()
      const target = await latestPos()
      if (indexedPos >= target || !worker) return
      const done = new Promise<void>((resolve) => waiters.push({ pos: target, resolve }))
      worker.postMessage({ type: "index" })
      let timeout: ReturnType<typeof setTimeout> | undefined
      await Promise.race([done, new Promise((resolve) => (timeout = setTimeout(resolve, catchUpWaitMs)))])
      clearTimeout(timeout)
    },
    async read<Row>(sql: string, params: unknown[]): Promise<Row[]> {
      if (inMemory) {
        if (!s.inTransaction) return s.query(sql).all(...(params as never[])) as Row[]
        return (await database.db.executeQuery<Row>(CompiledQuery.raw(sql, params))).rows
      }
      // Opened once the worker created the schema (catchUp comes first).
      if (!reader) {
        const r = new SqliteDatabase(database.location)
        r.exec(`pragma busy_timeout = ${busyTimeout}`)
        r.exec("pragma query_only = 1")
        r.exec("pragma cache_size = -32768")
        r.query("attach ? as search").run(searchDatabasePath(database.location))
        r.exec("pragma search.cache_size = -65536")
        // Every commit of another connection to a file empties this connection's cache of it (the sends, the
        // worker's indexing): pages come back from the memory map, not read(2) (database.ts).
        r.exec(`pragma mmap_size = ${mmapBytes}`)
        r.exec(`pragma search.mmap_size = ${mmapBytes}`)
        reader = r
      }
      return reader.query(sql).all(...(params as never[])) as Row[]
    },
    start() {
      unsubscribe ??= events.subscribe((event) => {
        if (event.type === "conversation" && event.name.startsWith("message:")) schedule()
      })
      index()
    },
    async stop() {
      unsubscribe?.()
      unsubscribe = undefined
      clearTimeout(timer)
      timer = undefined
      reader?.close(false)
      reader = null
      const w = worker
      if (!w) return
      worker = null
      opened = null
      await new Promise<void>((resolve) => {
        const timeout = setTimeout(resolve, 2000)
        w.onmessage = (event: MessageEvent) => {
          if (event.data.type !== "stopped") return
          clearTimeout(timeout)
          resolve()
        }
        w.postMessage({ type: "stop" })
      })
      w.terminate()
      settle(true)
    },
    segments: () => segmentCount,
  }
}
