import { type Kysely, sql } from "kysely"
import type { Dialect } from "../db/database.ts"
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
const feedLockKey = 7_001_003

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

/**
 * The caller's changes after `pos`, in order: rows for them, and rows for every member of the conversations
 * they are in now. One index range scan per conversation plus one for the user, merged by pos.
 */
export async function listChangesAfter(
  db: Kysely<Database>,
  userId: string,
  afterPos: number,
  limit: number,
): Promise<ChangeRow[]> {
  const rows = await db
    .selectFrom("changes")
    .selectAll()
    .where("pos", ">", afterPos)
    .where((eb) =>
      eb.or([
        eb("user_id", "=", userId),
        eb.and([
          eb("user_id", "is", null),
          eb(
            "conversation_id",
            "in",
            eb.selectFrom("conversation_members").select("conversation_id").where("user_id", "=", userId),
          ),
        ]),
      ]),
    )
    .orderBy("pos")
    .limit(limit)
    .execute()
  return rows.map((r) => ({ ...r, pos: Number(r.pos) })) as ChangeRow[]
}

/** The newest position in the feed (0 when empty): where a fresh client starts. */
export async function latestPosition(db: Kysely<Database>): Promise<number> {
  const row = await db
    .selectFrom("changes")
    .select((eb) => eb.fn.max("pos").as("pos"))
    .executeTakeFirst()
  return Number(row?.pos ?? 0)
}
