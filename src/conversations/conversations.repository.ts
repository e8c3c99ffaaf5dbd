import { type Kysely, sql } from "kysely"
import type { DatabaseHandle } from "../db/database.ts"
import { listParam, postgresQuery, readQuery } from "../db/read-query.ts"
import type { MessageView } from "../messages/messages.repository.ts"
import type { Database } from "../db/schema.ts"
import type { ConversationType, MemberRole } from "./conversations.tables.ts"

/** A conversation seen by one member: the conversation row with that member's own state. */
export type MembershipView = {
  id: string
  type: ConversationType
  name: string | null
  avatar_url: string | null
  description: string | null
  created_by: string | null
  /** DIRECT: the two member ids, sorted, space-separated. */
  direct_key: string | null
  last_seq: number
  last_message_id: string | null
  last_message_at: number | null
  created_at: number
  updated_at: number
  role: MemberRole
  joined_at: number
  last_read_seq: number
  last_delivered_seq: number
  cleared_seq: number
  muted_until: number | null
  archived: number | boolean
  favourite: number | boolean
  pinned_at: number | null
  hidden: number | boolean
}

const membershipSelect = `select c.id, c.type, c.name, c.avatar_url, c.description, c.created_by, c.direct_key, c.last_seq,
  c.last_message_id, c.last_message_at, c.created_at, c.updated_at, cm.role, cm.joined_at, cm.last_read_seq,
  cm.last_delivered_seq, cm.cleared_seq, cm.muted_until, cm.archived, cm.favourite, cm.pinned_at, cm.hidden
  from conversation_members cm join conversations c on c.id = cm.conversation_id`

const membershipQuery = readQuery<MembershipView>(
  `${membershipSelect} where cm.conversation_id = ? and cm.user_id = ?`,
)

/** The conversation as this user sees it, or undefined when they are not a member (or it does not exist). */
export async function findMembership(
  h: DatabaseHandle,
  conversationId: string,
  userId: string,
): Promise<MembershipView | undefined> {
  return (await membershipQuery(h, [conversationId, userId]))[0]
}

/** Whether a conversation exists (to tell 403 from 404). */
export async function conversationExists(db: Kysely<Database>, conversationId: string): Promise<boolean> {
  const row = await db
    .selectFrom("conversations")
    .select("id")
    .where("id", "=", conversationId)
    .executeTakeFirst()
  return !!row
}

/** Filters of the conversation list. */
export type ListFilter = { userId: string; archived: boolean; limit: number; offset: number }

// A DIRECT chat the user deleted stays out until a newer message (hidden and nothing after cleared_seq).
const listed = `where cm.user_id = ? and cm.archived = ? and (cm.hidden = false or c.last_seq > cm.cleared_seq)`
const listQuery = readQuery<MembershipView>(
  `${membershipSelect} ${listed}
   order by case when cm.pinned_at is null then 1 else 0 end, cm.pinned_at desc,
     case when c.last_message_at is null then 1 else 0 end, c.last_message_at desc, c.created_at desc, c.id desc
   limit ? offset ?`,
)
const countQuery = readQuery<{ n: number }>(
  `select count(*) as n from conversation_members cm join conversations c on c.id = cm.conversation_id ${listed}`,
)

/**
 * One page of the user's conversations: pinned first, then newest activity first, never-messaged last
 * (portable NULLS LAST), ties by creation.
 */
export async function listMemberships(h: DatabaseHandle, f: ListFilter): Promise<MembershipView[]> {
  return listQuery(h, [f.userId, f.archived, f.limit, f.offset])
}

/** How many conversations the list has in total (same filter, no page). */
export async function countMemberships(
  h: DatabaseHandle,
  userId: string,
  archived: boolean,
): Promise<number> {
  return Number((await countQuery(h, [userId, archived]))[0]?.n ?? 0)
}

/** Postgres: a page of the list with everything its answer needs (see `listPage`). */
export type ListPageRow = MembershipView & {
  /** The first `$5` members in join order (JSON), and how many there are. */
  participants: ParticipantRow[] | null
  participant_count: number
  /** The message `last_message_id` names, with its sender (null when none). */
  last: MessageView | null
  /** Whether the caller hid that message. */
  last_hidden: boolean
}

// The page (as `listQuery`) left-joined to its total (as `countQuery`), so an empty page still has a row. The
// total is counted with the page (`count(*) over ()`, before the limit); only a page past the end counts
// again (COALESCE evaluates its second subquery only when the first is null). Each conversation comes with
// its first members (as `participantsOf`: the first `$5` memberships, then their users; joining users first
// read every member's user row, ~14 per conversation here) and its last message (as `findMessageViews`,
// `hiddenAmong`), as JSON.
const listPageQuery = postgresQuery<ListPageRow & { total: number }>(`
  with page as (
    ${membershipSelect.replace(" from conversation_members cm", ", count(*) over () as n from conversation_members cm")}
    where cm.user_id = $1 and cm.archived = $2 and (cm.hidden = false or c.last_seq > cm.cleared_seq)
    order by case when cm.pinned_at is null then 1 else 0 end, cm.pinned_at desc,
      case when c.last_message_at is null then 1 else 0 end, c.last_message_at desc, c.created_at desc, c.id desc
    limit $3 offset $4
  ), total as (
    select coalesce((select p.n from page p limit 1), (
      select count(*) from conversation_members cm join conversations c on c.id = cm.conversation_id
      where cm.user_id = $1 and cm.archived = $2 and (cm.hidden = false or c.last_seq > cm.cleared_seq))) as n
  )
  select total.n as total, p.*,
    (select json_agg(x) from (
      select pm.conversation_id, pm.user_id, pm.role, u.display_name, u.phone_number, u.avatar_url, u.last_seen
      from (select pm.conversation_id, pm.user_id, pm.role, pm.joined_at from conversation_members pm
        where pm.conversation_id = p.id order by pm.joined_at, pm.user_id limit $5) pm
      join users u on u.id = pm.user_id order by pm.joined_at, pm.user_id) x) as participants,
    (select count(*) from conversation_members pm where pm.conversation_id = p.id) as participant_count,
    (select row_to_json(x) from (
      select lm.id, lm.conversation_id, lm.seq, lm.sender_id, lm.client_message_id, lm.content, lm.message_type,
        lm.media_url, lm.thumbnail_url, lm.audio_duration, lm.reply_to_id, lm.is_encrypted, lm.is_forwarded,
        lm.edited_at, lm.deleted_at, lm.created_at, lm.updated_at, lu.display_name as sender_name,
        lu.phone_number as sender_phone, lu.avatar_url as sender_avatar
      from messages lm left join users lu on lu.id = lm.sender_id where lm.id = p.last_message_id) x) as last,
    exists (select 1 from message_hides h where h.user_id = $1 and h.message_id = p.last_message_id) as last_hidden
  from total left join page p on true
  order by case when p.pinned_at is null then 1 else 0 end, p.pinned_at desc,
    case when p.last_message_at is null then 1 else 0 end, p.last_message_at desc, p.created_at desc, p.id desc`)

/**
 * Postgres: `listMemberships` + `countMemberships` + what rendering the page reads (participants capped at
 * `participantCap`, last messages, the caller's hides of them) in one statement.
 */
export async function listPage(
  h: DatabaseHandle,
  f: ListFilter,
  participantCap: number,
): Promise<{ total: number; rows: ListPageRow[] }> {
  const rows = await listPageQuery(h, [f.userId, f.archived, f.limit, f.offset, participantCap])
  return {
    total: Number(rows[0]?.total ?? 0),
    rows: rows.filter((r) => r.id !== null),
  }
}

/** A member as the API lists them. */
export type ParticipantRow = {
  conversation_id: string
  user_id: string
  role: MemberRole
  display_name: string | null
  phone_number: string
  avatar_url: string | null
  last_seen: number | null
}

const participantsSelect = `select cm.conversation_id, cm.user_id, cm.role, u.display_name, u.phone_number, u.avatar_url,
  u.last_seen from conversation_members cm join users u on u.id = cm.user_id`
const participantsQuery = readQuery<ParticipantRow>(
  `${participantsSelect} where cm.conversation_id in (select value from json_each(?)) order by cm.joined_at, cm.user_id`,
  `${participantsSelect} where cm.conversation_id = any($1::text[]) order by cm.joined_at, cm.user_id`,
)

/** Members of these conversations with their public profile, in join order. */
export async function participantsOf(
  h: DatabaseHandle,
  conversationIds: string[],
): Promise<ParticipantRow[]> {
  if (conversationIds.length === 0) return []
  return participantsQuery(h, [listParam(h, conversationIds)])
}

/** Ids of the members of a conversation. */
export async function memberIds(db: Kysely<Database>, conversationId: string): Promise<string[]> {
  const rows = await db
    .selectFrom("conversation_members")
    .select("user_id")
    .where("conversation_id", "=", conversationId)
    .execute()
  return rows.map((r) => r.user_id)
}

/** Which of these user ids exist. */
export async function existingUserIds(db: Kysely<Database>, ids: string[]): Promise<Set<string>> {
  if (ids.length === 0) return new Set()
  const rows = await db.selectFrom("users").select("id").where("id", "in", ids).execute()
  return new Set(rows.map((r) => r.id))
}

/** The per-user fields a member may change on their own membership row. */
export type MemberStatePatch = Partial<{
  muted_until: number | null
  archived: boolean
  favourite: boolean
  pinned_at: number | null
  hidden: boolean
  cleared_seq: number
  last_read_seq: number
  last_delivered_seq: number
}>

/** Updates one member's own state. */
export async function updateMemberState(
  db: Kysely<Database>,
  conversationId: string,
  userId: string,
  patch: MemberStatePatch,
  now: number,
): Promise<void> {
  await db
    .updateTable("conversation_members")
    .set({ ...patch, updated_at: now })
    .where("conversation_id", "=", conversationId)
    .where("user_id", "=", userId)
    .execute()
}

/** Moves a member's read (and delivered) watermark forward to `seq`; never backwards. */
export async function advanceRead(
  db: Kysely<Database>,
  conversationId: string,
  userId: string,
  seq: number,
  now: number,
): Promise<void> {
  await db
    .updateTable("conversation_members")
    .set((eb) => ({
      last_read_seq: seq,
      last_delivered_seq: sql<number>`case when ${eb.ref("last_delivered_seq")} > ${seq} then ${eb.ref("last_delivered_seq")} else ${seq} end`,
      updated_at: now,
    }))
    .where("conversation_id", "=", conversationId)
    .where("user_id", "=", userId)
    .where("last_read_seq", "<", seq)
    .execute()
}

/** Moves a member's delivered watermark forward to `seq`. */
export async function advanceDelivered(
  db: Kysely<Database>,
  conversationId: string,
  userId: string,
  seq: number,
  now: number,
): Promise<void> {
  await db
    .updateTable("conversation_members")
    .set({ last_delivered_seq: seq, updated_at: now })
    .where("conversation_id", "=", conversationId)
    .where("user_id", "=", userId)
    .where("last_delivered_seq", "<", seq)
    .execute()
}

const blocksQuery = readQuery<{ blocker_id: string }>(
  "select blocker_id from user_blocks where (blocker_id = ? and blocked_id = ?) or (blocker_id = ? and blocked_id = ?)",
)

/** Whether `userId` blocked `otherId` ("blocked_them"), the reverse ("blocked_me"; checked first), or neither. */
export async function blockBetween(
  h: DatabaseHandle,
  userId: string,
  otherId: string,
): Promise<"blocked_them" | "blocked_me" | null> {
  const rows = await blocksQuery(h, [userId, otherId, otherId, userId])
  if (rows.some((r) => r.blocker_id === userId)) return "blocked_them"
  return rows.length ? "blocked_me" : null
}
