import type { Kysely } from "kysely"
import type { DatabaseHandle } from "../db/database.ts"
import { listParam, postgresQuery, readQuery } from "../db/read-query.ts"
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

const viewSelect = `select m.id, m.conversation_id, m.seq, m.sender_id, m.client_message_id, m.content, m.message_type,
  m.media_url, m.thumbnail_url, m.audio_duration, m.reply_to_id, m.is_encrypted, m.is_forwarded, m.edited_at,
  m.deleted_at, m.created_at, m.updated_at, u.display_name as sender_name, u.phone_number as sender_phone,
  u.avatar_url as sender_avatar from messages m left join users u on u.id = m.sender_id`

const viewsByIds = readQuery<MessageView>(
  `${viewSelect} where m.id in (select value from json_each(?))`,
  `${viewSelect} where m.id = any($1::text[])`,
)

/** The messages with these ids (any order; unknown ids are left out). */
export async function findMessageViews(h: DatabaseHandle, ids: string[]): Promise<MessageView[]> {
  if (ids.length === 0) return []
  return viewsByIds(h, [listParam(h, ids)])
}

const viewByClientId = readQuery<MessageView>(
  `${viewSelect} where m.sender_id = ? and m.client_message_id = ?`,
)

/** The message a user sent with this client id, if any (idempotent sends). */
export async function findByClientId(
  h: DatabaseHandle,
  senderId: string,
  clientMessageId: string,
): Promise<MessageView | undefined> {
  return (await viewByClientId(h, [senderId, clientMessageId]))[0]
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

const visible = `${viewSelect} where m.conversation_id = ? and m.seq > ? and m.deleted_at is null
  and not exists (select 1 from message_hides h where h.user_id = ? and h.message_id = m.id)`
const historyQueries = {
  newest: readQuery<MessageView>(`${visible} order by m.seq desc limit ?`),
  before: readQuery<MessageView>(`${visible} and m.seq < ? order by m.seq desc limit ?`),
  after: readQuery<MessageView>(`${visible} order by m.seq asc limit ?`),
  between: readQuery<MessageView>(`${visible} and m.seq < ? order by m.seq asc limit ?`),
}

/**
 * Visible messages of a page (not deleted, not hidden by the user, after their clear point), one index range
 * on (conversation_id, seq). With `afterSeq` the page is the oldest `limit` after it, ascending; otherwise
 * the newest `limit` before `beforeSeq`, descending. Returns one extra row when there is more.
 */
export async function listHistory(h: DatabaseHandle, q: HistoryQuery): Promise<MessageView[]> {
  const floor = Math.max(q.clearedSeq, q.afterSeq ?? 0)
  const base = [q.conversationId, floor, q.userId]
  const n = q.limit + 1
  if (q.afterSeq !== undefined)
    return q.beforeSeq !== undefined
      ? historyQueries.between(h, [...base, q.beforeSeq, n])
      : historyQueries.after(h, [...base, n])
  return q.beforeSeq !== undefined
    ? historyQueries.before(h, [...base, q.beforeSeq, n])
    : historyQueries.newest(h, [...base, n])
}

const starredQuery = readQuery<{ message_id: string }>(
  "select message_id from message_stars where user_id = ? and message_id in (select value from json_each(?))",
  "select message_id from message_stars where user_id = $1 and message_id = any($2::text[])",
)
const hiddenQuery = readQuery<{ message_id: string }>(
  "select message_id from message_hides where user_id = ? and message_id in (select value from json_each(?))",
  "select message_id from message_hides where user_id = $1 and message_id = any($2::text[])",
)

/** Which of these messages the user starred. */
export async function starredAmong(h: DatabaseHandle, userId: string, ids: string[]): Promise<Set<string>> {
  if (ids.length === 0) return new Set()
  return new Set((await starredQuery(h, [userId, listParam(h, ids)])).map((r) => r.message_id))
}

/** Which of these messages the user hid for themselves. */
export async function hiddenAmong(h: DatabaseHandle, userId: string, ids: string[]): Promise<Set<string>> {
  if (ids.length === 0) return new Set()
  return new Set((await hiddenQuery(h, [userId, listParam(h, ids)])).map((r) => r.message_id))
}

/** Read and delivered watermarks of every member of these conversations. */
export type Watermark = {
  conversation_id: string
  user_id: string
  last_read_seq: number
  last_delivered_seq: number
}

// A member who turned read receipts off (privacy) is seen as having received, never read (CONTRACT A4).
const watermarkSelect = `select cm.conversation_id, cm.user_id,
  case when s.show_read_receipts = false then 0 else cm.last_read_seq end as last_read_seq,
  case when cm.last_delivered_seq > cm.last_read_seq then cm.last_delivered_seq else cm.last_read_seq end as last_delivered_seq
  from conversation_members cm left join user_settings s on s.user_id = cm.user_id`
const watermarksQuery = readQuery<Watermark>(
  `${watermarkSelect} where cm.conversation_id in (select value from json_each(?))`,
  `${watermarkSelect} where cm.conversation_id = any($1::text[])`,
)

/** Watermarks of the members of these conversations, as others may see them (for message status). */
export async function watermarksOf(h: DatabaseHandle, conversationIds: string[]): Promise<Watermark[]> {
  if (conversationIds.length === 0) return []
  return watermarksQuery(h, [listParam(h, conversationIds)])
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
  h: DatabaseHandle,
  conversationId: string,
  userId: string,
  clearedSeq: number,
): Promise<MessageView | undefined> {
  const rows = await listHistory(h, { conversationId, userId, clearedSeq, limit: 1 })
  return rows[0]
}

/** Postgres: what a statement returns beside a message to serialize it for one viewer (star, reply preview). */
export type ViewerColumns = {
  is_starred: boolean
  reply_id: string | null
  reply_sender_name: string | null
  reply_sender_phone: string | null
  reply_content: string | null
  reply_deleted_at: number | null
}

/** Postgres: a history page with everything its answer needs, from one statement (see `historyPage`). */
export type HistoryPage = {
  membership: { last_seq: number; last_read_seq: number }
  /** Newest first, or oldest first with `afterSeq`; one extra row when there is more. */
  rows: (MessageView & ViewerColumns)[]
  watermarks: Watermark[]
}

type HistoryRow = HistoryPage["rows"][number] & {
  last_seq: number
  last_read_seq: number
  watermarks: Watermark[] | null
}

// The caller's membership (no row: not a member), then the page as in `listHistory` (left-joined: a
// membership row with an empty page), each message with the caller's star and its reply preview (a reply to a
// message of the same conversation), and, on the first row only, the members' watermarks (`watermarksOf`).
const historyPageText = (condition: string, order: "asc" | "desc") => `
  with mem as (
    select c.last_seq, cm.last_read_seq, cm.cleared_seq from conversation_members cm
    join conversations c on c.id = cm.conversation_id where cm.conversation_id = $1 and cm.user_id = $2
  ), page as (
    select m.id, m.conversation_id, m.seq, m.sender_id, m.client_message_id, m.content, m.message_type,
      m.media_url, m.thumbnail_url, m.audio_duration, m.reply_to_id, m.is_encrypted, m.is_forwarded, m.edited_at,
      m.deleted_at, m.created_at, m.updated_at
    from mem, messages m
    where m.conversation_id = $1 and m.seq > greatest(mem.cleared_seq, $3) ${condition} and m.deleted_at is null
      and not exists (select 1 from message_hides h where h.user_id = $2 and h.message_id = m.id)
    order by m.seq ${order} limit $4
  ), marks as (
    ${watermarkSelect} where cm.conversation_id = $1
  )
  select mem.last_seq, mem.last_read_seq, p.*, u.display_name as sender_name, u.phone_number as sender_phone,
    u.avatar_url as sender_avatar,
    exists (select 1 from message_stars s where s.user_id = $2 and s.message_id = p.id) as is_starred,
    r.id as reply_id, ru.display_name as reply_sender_name, ru.phone_number as reply_sender_phone,
    r.content as reply_content, r.deleted_at as reply_deleted_at,
    case when row_number() over (order by p.seq ${order}) = 1 then (select json_agg(marks) from marks) end as watermarks
  from mem left join page p on true
  left join users u on u.id = p.sender_id
  left join messages r on r.id = p.reply_to_id and r.conversation_id = p.conversation_id
  left join users ru on ru.id = r.sender_id
  order by p.seq ${order}`
const historyPageQueries = {
  newest: postgresQuery<HistoryRow>(historyPageText("", "desc")),
  before: postgresQuery<HistoryRow>(historyPageText("and m.seq < $5", "desc")),
  after: postgresQuery<HistoryRow>(historyPageText("", "asc")),
  between: postgresQuery<HistoryRow>(historyPageText("and m.seq < $5", "asc")),
}

/**
 * Postgres: `findMembership` + `listHistory` + what serializing the page reads (`serializeFor`: watermarks,
 * stars, reply previews) in one statement; undefined when the user is not a member. `clearedSeq` is the
 * member's own (read in the statement).
 */
export async function historyPage(
  h: DatabaseHandle,
  q: Omit<HistoryQuery, "clearedSeq">,
): Promise<HistoryPage | undefined> {
  const base = [q.conversationId, q.userId, q.afterSeq ?? 0, q.limit + 1]
  const query =
    q.afterSeq !== undefined
      ? q.beforeSeq !== undefined
        ? historyPageQueries.between
        : historyPageQueries.after
      : q.beforeSeq !== undefined
        ? historyPageQueries.before
        : historyPageQueries.newest
  const rows = await query(h, q.beforeSeq !== undefined ? [...base, q.beforeSeq] : base)
  const first = rows[0]
  if (!first) return undefined
  return {
    membership: { last_seq: first.last_seq, last_read_seq: first.last_read_seq },
    rows: first.id === null ? [] : rows,
    watermarks: (first.watermarks ?? []).map((w) => ({ ...w, conversation_id: q.conversationId })),
  }
}
