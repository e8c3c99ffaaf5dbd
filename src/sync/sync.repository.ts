import { type Kysely, sql } from "kysely"
import type { DatabaseHandle, Dialect } from "../db/database.ts"
import { readQuery } from "../db/read-query.ts"
import type { Database } from "../db/schema.ts"
import type { ChangeKind } from "./sync.tables.ts"

/** A change to append to the feed. */
export type NewChange = {
  conversationId: string | null
  /** Only this user sees it; null: every member of the conversation. */
  userId?: string | null
  kind: ChangeKind
  messageId?: string | null
  data?: Record<string, unknown> | null
}

/** Arbitrary constant naming the feed's advisory lock on Postgres. */
export const feedLockKey = 7_001_003

/**
 * Appends changes and returns their positions. Call it as the **last** write of a transaction.
 *
 * Gap-free ordering: a reader at position P must never later see a row with pos < P commit. SQLite has one
 * writer at a time, so pos order is commit order. On Postgres concurrent transactions could commit out of
 * bigserial order, so appends take a transaction-scoped advisory lock first: the lock is held until commit,
 * so a transaction that takes a position commits before the next one can take a position. Sends are batched
 * (one append per batch), so the lock is held briefly and rarely.
 */
export async function appendChanges(
  db: Kysely<Database>,
  dialect: Dialect,
  changes: NewChange[],
  now: number,
): Promise<number[]> {
  if (changes.length === 0) return []
  if (dialect === "postgres") await sql`select pg_advisory_xact_lock(${feedLockKey})`.execute(db)
  const positions: number[] = []
  // Chunked to stay under SQLite's bound-parameter limit.
  for (let i = 0; i < changes.length; i += 1000) {
    const rows = await db
      .insertInto("changes")
      .values(
        changes.slice(i, i + 1000).map((c) => ({
          conversation_id: c.conversationId,
          user_id: c.userId ?? null,
          kind: c.kind,
          message_id: c.messageId ?? null,
          data: c.data ? JSON.stringify(c.data) : null,
          created_at: now,
        })),
      )
      .returning("pos")
      .execute()
    for (const row of rows) positions.push(Number(row.pos))
  }
  // Multi-row INSERT … RETURNING gives rows in insertion order on both dialects, but do not rely on it.
  return positions.sort((a, b) => a - b)
}

/** A feed row as stored. */
export type ChangeRow = {
  pos: number
  conversation_id: string | null
  user_id: string | null
  kind: ChangeKind
  message_id: string | null
  data: string | null
  created_at: number
}

// Two index range scans merged by pos: the user's own rows (changes_user), and, per conversation they are in,
// that conversation's rows for everyone (changes_conversation). Never a scan of the whole feed after pos.
const changesQuery = readQuery<ChangeRow>(
  `select pos, conversation_id, user_id, kind, message_id, data, created_at from changes where user_id = ? and pos > ?
   union all
   select ch.pos, ch.conversation_id, ch.user_id, ch.kind, ch.message_id, ch.data, ch.created_at
   from conversation_members cm join changes ch on ch.conversation_id = cm.conversation_id
   where cm.user_id = ? and ch.pos > ? and ch.user_id is null
   order by pos limit ?`,
)

/** The caller's changes after `pos`, in order: rows for them, and rows for every member of the conversations they are in now. */
export async function listChangesAfter(
  h: DatabaseHandle,
  userId: string,
  afterPos: number,
  limit: number,
): Promise<ChangeRow[]> {
  const rows = await changesQuery(h, [userId, afterPos, userId, afterPos, limit])
  return rows.map((r) => ({ ...r, pos: Number(r.pos) }))
}

/** The newest position in the feed (0 when empty): where a fresh client starts. */
export async function latestPosition(db: Kysely<Database>): Promise<number> {
  const row = await db
    .selectFrom("changes")
    .select((eb) => eb.fn.max("pos").as("pos"))
    .executeTakeFirst()
  return Number(row?.pos ?? 0)
}
