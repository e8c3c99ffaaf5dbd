import { type Kysely, type Selectable, sql } from "kysely"
import type { MemberRole } from "../conversations/conversations.tables.ts"
import type { Database } from "../db/schema.ts"
import type { AttendanceStatus, JoinRequestStatus } from "./groups.tables.ts"

/** A group's settings row. */
export type GroupSettingsRow = Selectable<Database["group_settings"]>

/** The conversation row of a group. */
export type GroupRow = Selectable<Database["conversations"]>

/** The group with this id, or undefined (unknown id, or a DIRECT conversation). */
export async function findGroup(db: Kysely<Database>, id: string): Promise<GroupRow | undefined> {
  return db
    .selectFrom("conversations")
    .selectAll()
    .where("id", "=", id)
    .where("type", "=", "GROUP")
    .executeTakeFirst()
}

/** The type of a conversation, or undefined when it does not exist (to tell 403 from 404). */
export async function conversationType(db: Kysely<Database>, id: string) {
  const row = await db.selectFrom("conversations").select("type").where("id", "=", id).executeTakeFirst()
  return row?.type
}

/** The group's settings, created with the defaults and a fresh invite code when missing (groups made by `POST /conversations`). */
export async function ensureSettings(
  db: Kysely<Database>,
  conversationId: string,
  now: number,
  initial: { is_public?: boolean; allow_member_invites?: boolean; require_admin_approval?: boolean } = {},
): Promise<GroupSettingsRow> {
  const existing = await db
    .selectFrom("group_settings")
    .selectAll()
    .where("conversation_id", "=", conversationId)
    .executeTakeFirst()
  if (existing) return existing
  await db
    .insertInto("group_settings")
    .values({
      conversation_id: conversationId,
      is_public: !!initial.is_public,
      allow_member_invites: initial.allow_member_invites ?? true,
      require_admin_approval: !!initial.require_admin_approval,
      only_admins_can_post: false,
      only_admins_can_edit_info: true,
      invite_link: newInviteCode(),
      invite_link_enabled: true,
      mute_notifications: false,
      theme_color: null,
      created_at: now,
      updated_at: now,
    })
    .onConflict((oc) => oc.column("conversation_id").doNothing())
    .execute()
  return db
    .selectFrom("group_settings")
    .selectAll()
    .where("conversation_id", "=", conversationId)
    .executeTakeFirstOrThrow()
}

const codeAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

/** A 12-character invite code from the OS random source (no modulo bias: bytes ≥ 248 are drawn again). */
export function newInviteCode(): string {
  let code = ""
  while (code.length < 12)
    for (const b of crypto.getRandomValues(new Uint8Array(16)))
      if (b < 248 && code.length < 12) code += codeAlphabet[b % 62]
  return code
}

/** The settings row of an invite code (exact, case-sensitive), or undefined. */
export async function findSettingsByInvite(db: Kysely<Database>, code: string) {
  return db.selectFrom("group_settings").selectAll().where("invite_link", "=", code).executeTakeFirst()
}

/** What `PUT /groups/:id/settings` may change. */
export type SettingsPatch = Partial<{
  is_public: boolean
  allow_member_invites: boolean
  require_admin_approval: boolean
  only_admins_can_post: boolean
  only_admins_can_edit_info: boolean
  invite_link: string
  invite_link_enabled: boolean
  mute_notifications: boolean
  theme_color: string | null
}>

/** Updates a group's settings. */
export async function updateSettings(
  db: Kysely<Database>,
  conversationId: string,
  patch: SettingsPatch,
  now: number,
) {
  await db
    .updateTable("group_settings")
    .set({ ...patch, updated_at: now })
    .where("conversation_id", "=", conversationId)
    .execute()
}

/** A member with the profile fields GroupMember shows. */
export type GroupMemberRow = {
  user_id: string
  role: MemberRole
  joined_at: number
  display_name: string | null
  phone_number: string
  avatar_url: string | null
  bio: string | null
  last_seen: number | null
  is_verified: number | boolean
}

/** Every member of a group with their profile (unsorted: the service sorts by role). */
export async function listMemberRows(
  db: Kysely<Database>,
  conversationId: string,
): Promise<GroupMemberRow[]> {
  return db
    .selectFrom("conversation_members as cm")
    .innerJoin("users as u", "u.id", "cm.user_id")
    .select([
      "cm.user_id",
      "cm.role",
      "cm.joined_at",
      "u.display_name",
      "u.phone_number",
      "u.avatar_url",
      "u.bio",
      "u.last_seen",
      "u.is_verified",
    ])
    .where("cm.conversation_id", "=", conversationId)
    .execute()
}

/** How many members a group has. */
export async function countMembers(db: Kysely<Database>, conversationId: string): Promise<number> {
  const row = await db
    .selectFrom("conversation_members")
    .select((eb) => eb.fn.countAll().as("n"))
    .where("conversation_id", "=", conversationId)
    .executeTakeFirst()
  return Number(row?.n ?? 0)
}

/** A member's role, or undefined when they are not a member. */
export async function memberRole(db: Kysely<Database>, conversationId: string, userId: string) {
  const row = await db
    .selectFrom("conversation_members")
    .select("role")
    .where("conversation_id", "=", conversationId)
    .where("user_id", "=", userId)
    .executeTakeFirst()
  return row?.role
}

/** Of these users, those already in the group. */
export async function membersAmong(db: Kysely<Database>, conversationId: string, userIds: string[]) {
  if (userIds.length === 0) return new Set<string>()
  const rows = await db
    .selectFrom("conversation_members")
    .select("user_id")
    .where("conversation_id", "=", conversationId)
    .where("user_id", "in", userIds)
    .execute()
  return new Set(rows.map((r) => r.user_id))
}

/** Adds members (skipping present ones); returns the ids actually added. Call inside a transaction. */
export async function insertMembers(
  db: Kysely<Database>,
  conversationId: string,
  userIds: string[],
  role: MemberRole,
  now: number,
): Promise<string[]> {
  const present = await membersAmong(db, conversationId, userIds)
  const fresh = userIds.filter((u) => !present.has(u))
  for (let i = 0; i < fresh.length; i += 500)
    await db
      .insertInto("conversation_members")
      .values(
        fresh.slice(i, i + 500).map((u) => ({
          conversation_id: conversationId,
          user_id: u,
          role,
          joined_at: now,
          updated_at: now,
        })),
      )
      .onConflict((oc) => oc.columns(["conversation_id", "user_id"]).doNothing())
      .execute()
  return fresh
}

/** Removes one member; true when a row went. */
export async function deleteMember(db: Kysely<Database>, conversationId: string, userId: string) {
  const result = await db
    .deleteFrom("conversation_members")
    .where("conversation_id", "=", conversationId)
    .where("user_id", "=", userId)
    .executeTakeFirst()
  return Number(result.numDeletedRows) > 0
}

/** Sets a member's role (only if their role is `onlyFrom` / is not `notFrom`, when given); true when a row changed. */
export async function setMemberRole(
  db: Kysely<Database>,
  conversationId: string,
  userId: string,
  role: MemberRole,
  now: number,
  onlyFrom?: MemberRole,
  notFrom?: MemberRole,
): Promise<boolean> {
  let query = db
    .updateTable("conversation_members")
    .set({ role, updated_at: now })
    .where("conversation_id", "=", conversationId)
    .where("user_id", "=", userId)
  if (onlyFrom) query = query.where("role", "=", onlyFrom)
  if (notFrom) query = query.where("role", "!=", notFrom)
  const result = await query.executeTakeFirst()
  return Number(result.numUpdatedRows) > 0
}

/**
 * Stores a SYSTEM message ("<name> left the group") with the next seq, the way a send does (seq and the
 * conversation's last message move in the same statement, which also locks the row on Postgres). Call inside a
 * transaction, before `appendChanges`.
 */
export async function insertSystemMessage(
  db: Kysely<Database>,
  conversationId: string,
  senderId: string,
  content: string,
  now: number,
): Promise<{ id: string; seq: number }> {
  const id = Bun.randomUUIDv7()
  const bumped = await db
    .updateTable("conversations")
    .set((eb) => ({
      last_seq: sql<number>`${eb.ref("last_seq")} + 1`,
      last_message_id: id,
      last_message_at: now,
      updated_at: now,
    }))
    .where("id", "=", conversationId)
    .returning("last_seq")
    .executeTakeFirstOrThrow()
  const seq = Number(bumped.last_seq)
  await db
    .insertInto("messages")
    .values({
      id,
      conversation_id: conversationId,
      seq,
      sender_id: senderId,
      client_message_id: null,
      content,
      message_type: "SYSTEM",
      media_url: null,
      thumbnail_url: null,
      audio_duration: null,
      reply_to_id: null,
      is_encrypted: false,
      is_forwarded: false,
      edited_at: null,
      deleted_at: null,
      created_at: now,
      updated_at: now,
    } as never)
    .execute()
  return { id, seq }
}

/** An event with its RSVP counts, the creator's name and the viewer's own answer. */
export type EventRow = Selectable<Database["group_events"]> & {
  creator_name: string | null
  going_count: number
  maybe_count: number
  not_going_count: number
  my_status: AttendanceStatus | null
}

function eventsWithCounts(db: Kysely<Database>, viewerId: string) {
  const count = (status: AttendanceStatus) =>
    // Answers of people still in the group only (someone who left or was removed no longer attends).
    sql<number>`(select count(*) from group_event_attendees a join conversation_members m
      on m.conversation_id = e.conversation_id and m.user_id = a.user_id
      where a.event_id = e.id and a.status = ${status})`
  return db
    .selectFrom("group_events as e")
    .leftJoin("users as u", "u.id", "e.created_by")
    .selectAll("e")
    .select([
      sql<string | null>`coalesce(u.display_name, u.phone_number)`.as("creator_name"),
      count("going").as("going_count"),
      count("maybe").as("maybe_count"),
      count("not_going").as("not_going_count"),
      sql<AttendanceStatus | null>`(select a.status from group_event_attendees a where a.event_id = e.id and a.user_id = ${viewerId})`.as(
        "my_status",
      ),
    ])
}

/** A group's events, soonest first. */
export async function listEvents(
  db: Kysely<Database>,
  conversationId: string,
  viewerId: string,
): Promise<EventRow[]> {
  return eventsWithCounts(db, viewerId)
    .where("e.conversation_id", "=", conversationId)
    .orderBy("e.start_time")
    .orderBy("e.id")
    .execute() as Promise<EventRow[]>
}

/** One event of a group, or undefined. */
export async function findEvent(
  db: Kysely<Database>,
  conversationId: string,
  eventId: string,
  viewerId: string,
): Promise<EventRow | undefined> {
  return eventsWithCounts(db, viewerId)
    .where("e.conversation_id", "=", conversationId)
    .where("e.id", "=", eventId)
    .executeTakeFirst() as Promise<EventRow | undefined>
}

/** Stores or replaces a member's RSVP. */
export async function upsertAttendance(
  db: Kysely<Database>,
  eventId: string,
  userId: string,
  status: AttendanceStatus,
  now: number,
) {
  await db
    .insertInto("group_event_attendees")
    .values({ event_id: eventId, user_id: userId, status, created_at: now, updated_at: now })
    .onConflict((oc) => oc.columns(["event_id", "user_id"]).doUpdateSet({ status, updated_at: now }))
    .execute()
}

/** A join request with the requester's profile. */
export type JoinRequestRow = Selectable<Database["group_join_requests"]> & {
  display_name: string | null
  phone_number: string
  avatar_url: string | null
}

function joinRequests(db: Kysely<Database>) {
  return db
    .selectFrom("group_join_requests as r")
    .innerJoin("users as u", "u.id", "r.user_id")
    .selectAll("r")
    .select(["u.display_name", "u.phone_number", "u.avatar_url"])
}

/** A group's join requests with this status, oldest first. */
export async function listJoinRequests(
  db: Kysely<Database>,
  conversationId: string,
  status: JoinRequestStatus,
): Promise<JoinRequestRow[]> {
  return joinRequests(db)
    .where("r.conversation_id", "=", conversationId)
    .where("r.status", "=", status)
    .orderBy("r.created_at")
    .orderBy("r.id")
    .execute()
}

/** One join request of a group, or undefined. */
export async function findJoinRequest(db: Kysely<Database>, conversationId: string, requestId: string) {
  return joinRequests(db)
    .where("r.conversation_id", "=", conversationId)
    .where("r.id", "=", requestId)
    .executeTakeFirst()
}

/** The user's join request for a group, or undefined. */
export async function findUserJoinRequest(db: Kysely<Database>, conversationId: string, userId: string) {
  return joinRequests(db)
    .where("r.conversation_id", "=", conversationId)
    .where("r.user_id", "=", userId)
    .executeTakeFirst()
}

/** Opens (or reopens) a pending request for each user; returns their request ids. */
export async function openJoinRequests(
  db: Kysely<Database>,
  conversationId: string,
  userIds: string[],
  invitedBy: string | null,
  now: number,
): Promise<Map<string, string>> {
  if (userIds.length === 0) return new Map()
  await db
    .insertInto("group_join_requests")
    .values(
      userIds.map((u) => ({
        id: Bun.randomUUIDv7(),
        conversation_id: conversationId,
        user_id: u,
        status: "pending" as const,
        invited_by: invitedBy,
        decided_by: null,
        decided_at: null,
        created_at: now,
        updated_at: now,
      })),
    )
    .onConflict((oc) =>
      oc.columns(["conversation_id", "user_id"]).doUpdateSet((eb) => ({
        // A pending request keeps its place in the queue; a decided one is asked again.
        created_at: sql<number>`case when ${eb.ref("group_join_requests.status")} = 'pending' then ${eb.ref("group_join_requests.created_at")} else ${now} end`,
        status: "pending" as const,
        invited_by: invitedBy,
        decided_by: null,
        decided_at: null,
        updated_at: now,
      })),
    )
    .execute()
  const rows = await db
    .selectFrom("group_join_requests")
    .select(["id", "user_id"])
    .where("conversation_id", "=", conversationId)
    .where("user_id", "in", userIds)
    .execute()
  return new Map(rows.map((r) => [r.user_id, r.id]))
}

/** Decides a pending request; false when it was not pending any more (someone decided first). */
export async function decideJoinRequest(
  db: Kysely<Database>,
  requestId: string,
  status: "approved" | "rejected",
  deciderId: string,
  now: number,
): Promise<boolean> {
  const result = await db
    .updateTable("group_join_requests")
    .set({ status, decided_by: deciderId, decided_at: now, updated_at: now })
    .where("id", "=", requestId)
    .where("status", "=", "pending")
    .executeTakeFirst()
  return Number(result.numUpdatedRows) > 0
}
