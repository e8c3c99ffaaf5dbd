import { type Kysely, sql } from "kysely"
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

const membershipColumns = [
  "c.id",
  "c.type",
  "c.name",
  "c.avatar_url",
  "c.description",
  "c.created_by",
  "c.last_seq",
  "c.last_message_id",
  "c.last_message_at",
  "c.created_at",
  "c.updated_at",
  "cm.role",
  "cm.joined_at",
  "cm.last_read_seq",
  "cm.last_delivered_seq",
  "cm.cleared_seq",
  "cm.muted_until",
  "cm.archived",
  "cm.favourite",
  "cm.pinned_at",
  "cm.hidden",
] as const

const memberships = (db: Kysely<Database>) =>
  db
    .selectFrom("conversation_members as cm")
    .innerJoin("conversations as c", "c.id", "cm.conversation_id")
    .select(membershipColumns)

/** The conversation as this user sees it, or undefined when they are not a member (or it does not exist). */
export async function findMembership(
  db: Kysely<Database>,
  conversationId: string,
  userId: string,
): Promise<MembershipView | undefined> {
  return (await memberships(db)
    .where("cm.conversation_id", "=", conversationId)
    .where("cm.user_id", "=", userId)
    .executeTakeFirst()) as MembershipView | undefined
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

/**
 * One page of the user's conversations: pinned first, then newest activity first, never-messaged last
 * (portable NULLS LAST), ties by creation. A DIRECT chat the user deleted stays out until a newer message.
 */
export async function listMemberships(db: Kysely<Database>, f: ListFilter): Promise<MembershipView[]> {
  return (await memberships(db)
    .where("cm.user_id", "=", f.userId)
    .where("cm.archived", "=", f.archived)
    .where((eb) => eb.or([eb("cm.hidden", "=", false), eb("c.last_seq", ">", eb.ref("cm.cleared_seq"))]))
    .orderBy(sql`case when cm.pinned_at is null then 1 else 0 end`)
    .orderBy("cm.pinned_at", "desc")
    .orderBy(sql`case when c.last_message_at is null then 1 else 0 end`)
    .orderBy("c.last_message_at", "desc")
    .orderBy("c.created_at", "desc")
    .orderBy("c.id", "desc")
    .limit(f.limit)
    .offset(f.offset)
    .execute()) as MembershipView[]
}

/** How many conversations the list has in total (same filter, no page). */
export async function countMemberships(
  db: Kysely<Database>,
  userId: string,
  archived: boolean,
): Promise<number> {
  const row = await db
    .selectFrom("conversation_members as cm")
    .innerJoin("conversations as c", "c.id", "cm.conversation_id")
    .select((eb) => eb.fn.countAll().as("n"))
    .where("cm.user_id", "=", userId)
    .where("cm.archived", "=", archived)
    .where((eb) => eb.or([eb("cm.hidden", "=", false), eb("c.last_seq", ">", eb.ref("cm.cleared_seq"))]))
    .executeTakeFirst()
  return Number(row?.n ?? 0)
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

/** Members of these conversations with their public profile, in join order. */
export async function participantsOf(
  db: Kysely<Database>,
  conversationIds: string[],
): Promise<ParticipantRow[]> {
  if (conversationIds.length === 0) return []
  return (await db
    .selectFrom("conversation_members as cm")
    .innerJoin("users as u", "u.id", "cm.user_id")
    .select([
      "cm.conversation_id",
      "cm.user_id",
      "cm.role",
      "u.display_name",
      "u.phone_number",
      "u.avatar_url",
      "u.last_seen",
    ])
    .where("cm.conversation_id", "in", conversationIds)
    .orderBy("cm.joined_at")
    .orderBy("cm.user_id")
    .execute()) as ParticipantRow[]
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

/** Ids of the conversations a user is in. */
export async function conversationIdsOf(db: Kysely<Database>, userId: string): Promise<string[]> {
  const rows = await db
    .selectFrom("conversation_members")
    .select("conversation_id")
    .where("user_id", "=", userId)
    .execute()
  return rows.map((r) => r.conversation_id)
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

/** Moves a member's read (and delivered) watermark forward to `seq`; returns the previous read watermark, or null when nothing moved. */
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
