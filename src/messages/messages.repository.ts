import type { Kysely } from "kysely"
import type { Database } from "../db/schema.ts"
import type { MessageType } from "./messages.tables.ts"

/** A message with what its serialization needs from its sender. */
export type MessageView = {
  id: string
  conversation_id: string
  seq: number
  sender_id: string | null
  client_message_id: string | null
  content: string
  message_type: MessageType
  media_url: string | null
  thumbnail_url: string | null
  audio_duration: number | null
  reply_to_id: string | null
  is_encrypted: number | boolean
  is_forwarded: number | boolean
  edited_at: number | null
  deleted_at: number | null
  created_at: number
  updated_at: number
  sender_name: string | null
  sender_phone: string | null
  sender_avatar: string | null
}

const messageColumns = [
  "m.id",
  "m.conversation_id",
  "m.seq",
  "m.sender_id",
  "m.client_message_id",
  "m.content",
  "m.message_type",
  "m.media_url",
  "m.thumbnail_url",
  "m.audio_duration",
  "m.reply_to_id",
  "m.is_encrypted",
  "m.is_forwarded",
  "m.edited_at",
  "m.deleted_at",
  "m.created_at",
  "m.updated_at",
] as const

/** Messages joined with their sender's name and avatar. */
export const messageViews = (db: Kysely<Database>) =>
  db
    .selectFrom("messages as m")
    .leftJoin("users as u", "u.id", "m.sender_id")
    .select(messageColumns)
    .select([
      "u.display_name as sender_name",
      "u.phone_number as sender_phone",
      "u.avatar_url as sender_avatar",
    ])

/** The messages with these ids (any order; unknown ids are left out). */
export async function findMessageViews(db: Kysely<Database>, ids: string[]): Promise<MessageView[]> {
  if (ids.length === 0) return []
  const out: MessageView[] = []
  for (let i = 0; i < ids.length; i += 500)
    out.push(
      ...((await messageViews(db)
        .where("m.id", "in", ids.slice(i, i + 500))
        .execute()) as MessageView[]),
    )
  return out
}

/** The message a user sent with this client id, if any (idempotent sends). */
export async function findByClientId(
  db: Kysely<Database>,
  senderId: string,
  clientMessageId: string,
): Promise<MessageView | undefined> {
  return (await messageViews(db)
    .where("m.sender_id", "=", senderId)
    .where("m.client_message_id", "=", clientMessageId)
    .executeTakeFirst()) as MessageView | undefined
}

/** A history page: keyset on (conversation_id, seq) only, never OFFSET. */
export type HistoryQuery = {
  conversationId: string
  userId: string
  /** Messages at or below this seq were cleared by the user. */
  clearedSeq: number
  beforeSeq?: number
  afterSeq?: number
  limit: number
}

/**
 * Visible messages of a page (not deleted, not hidden by the user, after their clear point), ascending.
 * With `afterSeq` the page is the oldest `limit` after it; otherwise the newest `limit` before `beforeSeq`.
 * Returns one extra row when there is more (the caller trims it).
 */
export async function listHistory(db: Kysely<Database>, q: HistoryQuery): Promise<MessageView[]> {
  let query = messageViews(db)
    .where("m.conversation_id", "=", q.conversationId)
    .where("m.seq", ">", Math.max(q.clearedSeq, q.afterSeq ?? 0))
    .where("m.deleted_at", "is", null)
    .where((eb) =>
      eb.not(
        eb.exists(
          eb
            .selectFrom("message_hides as h")
            .select("h.message_id")
            .where("h.user_id", "=", q.userId)
            .whereRef("h.message_id", "=", "m.id"),
        ),
      ),
    )
  if (q.beforeSeq !== undefined) query = query.where("m.seq", "<", q.beforeSeq)
  if (q.afterSeq !== undefined) {
    return (await query
      .orderBy("m.seq", "asc")
      .limit(q.limit + 1)
      .execute()) as MessageView[]
  }
  const rows = (await query
    .orderBy("m.seq", "desc")
    .limit(q.limit + 1)
    .execute()) as MessageView[]
  return rows
}

/** Which of these messages the user starred. */
export async function starredAmong(
  db: Kysely<Database>,
  userId: string,
  ids: string[],
): Promise<Set<string>> {
  if (ids.length === 0) return new Set()
  const rows = await db
    .selectFrom("message_stars")
    .select("message_id")
    .where("user_id", "=", userId)
    .where("message_id", "in", ids)
    .execute()
  return new Set(rows.map((r) => r.message_id))
}

/** Which of these messages the user hid for themselves. */
export async function hiddenAmong(db: Kysely<Database>, userId: string, ids: string[]): Promise<Set<string>> {
  if (ids.length === 0) return new Set()
  const rows = await db
    .selectFrom("message_hides")
    .select("message_id")
    .where("user_id", "=", userId)
    .where("message_id", "in", ids)
    .execute()
  return new Set(rows.map((r) => r.message_id))
}

/** Read and delivered watermarks of every member of these conversations. */
export type Watermark = {
  conversation_id: string
  user_id: string
  last_read_seq: number
  last_delivered_seq: number
}

/** Watermarks of the members of these conversations (for message status). */
export async function watermarksOf(db: Kysely<Database>, conversationIds: string[]): Promise<Watermark[]> {
  if (conversationIds.length === 0) return []
  return (await db
    .selectFrom("conversation_members")
    .select(["conversation_id", "user_id", "last_read_seq", "last_delivered_seq"])
    .where("conversation_id", "in", conversationIds)
    .execute()) as Watermark[]
}

/** The newest message of a conversation that is not deleted for everyone (after a delete of the last one). */
export async function newestLiveMessage(
  db: Kysely<Database>,
  conversationId: string,
): Promise<{ id: string; created_at: number } | undefined> {
  return db
    .selectFrom("messages")
    .select(["id", "created_at"])
    .where("conversation_id", "=", conversationId)
    .where("deleted_at", "is", null)
    .orderBy("seq", "desc")
    .limit(1)
    .executeTakeFirst()
}

/** The newest message a given user can see in a conversation (list fallback when the last one is hidden). */
export async function newestVisibleMessage(
  db: Kysely<Database>,
  conversationId: string,
  userId: string,
  clearedSeq: number,
): Promise<MessageView | undefined> {
  const rows = await listHistory(db, { conversationId, userId, clearedSeq, limit: 1 })
  return rows[0]
}
