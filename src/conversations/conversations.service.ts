import { leaveGroup } from "../groups/groups.service.ts"
import { iso } from "../clock.ts"
import type { Deps } from "../deps.ts"
import { badRequest, forbidden, notFound } from "../errors.ts"
import {
  findMessageViews,
  hiddenAmong,
  type MessageView,
  newestVisibleMessage,
} from "../messages/messages.repository.ts"
import { encodeCursor } from "../sync/sync.cursor.ts"
import { appendChanges } from "../sync/sync.repository.ts"
import { requireMembership } from "./conversations.access.ts"
import {
  blockBetween,
  countMemberships,
  existingUserIds,
  findMembership,
  listMemberships,
  listPage,
  type MemberStatePatch,
  type MembershipView,
  participantsOf,
  type ParticipantRow,
  updateMemberState,
} from "./conversations.repository.ts"
import type { ConversationType, MemberRole } from "./conversations.tables.ts"

/** "Muted with no end": far enough in the future, and a safe integer on both dialects. */
const mutedForever = 253402300799000 // 9999-12-31T23:59:59Z

/** A participant as the app reads it. */
export type ParticipantJson = {
  id: string
  user_id: string
  display_name: string | null
  phone_number: string
  avatar_url: string | null
  role: MemberRole
  last_seen: string | null
}

const participantJson = (p: ParticipantRow): ParticipantJson => ({
  id: p.user_id,
  user_id: p.user_id,
  display_name: p.display_name,
  phone_number: p.phone_number,
  avatar_url: p.avatar_url,
  role: p.role,
  last_seen: iso(p.last_seen),
})

/** The last visible message as the list shows it (both cases). */
function lastMessageJson(m: MessageView | undefined) {
  if (!m) return null
  const createdAt = iso(m.created_at)
  const senderName = m.sender_name ?? m.sender_phone
  return {
    id: m.id,
    content: m.content,
    messageType: m.message_type,
    message_type: m.message_type,
    type: m.message_type,
    createdAt,
    created_at: createdAt,
    senderId: m.sender_id,
    sender_id: m.sender_id,
    senderName,
    sender_name: senderName,
    seq: Number(m.seq),
  }
}

/**
 * A conversation as one member sees it: the list item of CONTRACT §2.3 (camelCase) with every snake_case
 * alias the app's other screens read, and the caller's own flags.
 */
export function conversationJson(
  c: MembershipView,
  userId: string,
  participants: ParticipantRow[],
  participantCount: number,
  last: MessageView | undefined,
  now: number,
) {
  const others = participants.filter((p) => p.user_id !== userId)
  const other = c.type === "DIRECT" ? others[0] : undefined
  const name = c.type === "DIRECT" ? (other ? (other.display_name ?? other.phone_number) : c.name) : c.name
  const avatar = c.type === "DIRECT" ? (other?.avatar_url ?? null) : c.avatar_url
  const readUpTo = Math.max(Number(c.last_read_seq), Number(c.cleared_seq))
  const unread = Math.max(0, Number(c.last_seq) - readUpTo)
  const muted = c.muted_until !== null && Number(c.muted_until) > now
  const lastMessage = lastMessageJson(last)
  const createdAt = iso(c.created_at)
  const updatedAt = iso(c.updated_at)
  const lastMessageAt = iso(c.last_message_at)
  const mutedUntil = muted && Number(c.muted_until) !== mutedForever ? iso(c.muted_until) : null
  return {
    id: c.id,
    type: c.type,
    name,
    description: c.description,
    avatar,
    avatarUrl: avatar,
    avatar_url: avatar,
    created_by: c.created_by,
    createdBy: c.created_by,
    isMuted: muted,
    is_muted: muted,
    mutedUntil,
    muted_until: mutedUntil,
    isArchived: !!c.archived,
    is_archived: !!c.archived,
    isFavourite: !!c.favourite,
    isFavorite: !!c.favourite,
    is_favorite: !!c.favourite,
    is_favourite: !!c.favourite,
    isPinned: c.pinned_at !== null,
    is_pinned: c.pinned_at !== null,
    createdAt,
    created_at: createdAt,
    updatedAt,
    updated_at: updatedAt,
    lastMessageAt,
    last_message_at: lastMessageAt,
    unreadCount: unread,
    unread_count: unread,
    participantCount,
    participant_count: participantCount,
    lastSeq: Number(c.last_seq),
    last_seq: Number(c.last_seq),
    lastReadSeq: Number(c.last_read_seq),
    last_read_seq: Number(c.last_read_seq),
    clearedSeq: Number(c.cleared_seq),
    cleared_seq: Number(c.cleared_seq),
    role: c.role,
    current_user_role: c.role,
    currentUserRole: c.role,
    lastMessage,
    last_message: lastMessage,
    participants: participants.map(participantJson),
  }
}

/** The conversation JSON type. */
export type ConversationJson = ReturnType<typeof conversationJson>

/** Lists carry at most this many participants per conversation (`participant_count` is exact; GET /conversations/:id has them all). */
export const listParticipantCap = 10

/**
 * Renders memberships for their member: participants in one query (the first `participantCap` of each when
 * given), last messages from the denormalized `last_message_id` in one query; only when that one is hidden
 * or cleared for the caller is the newest visible one looked up for that conversation.
 */
export async function renderConversations(
  deps: Deps,
  userId: string,
  rows: MembershipView[],
  participantCap?: number,
): Promise<ConversationJson[]> {
  if (rows.length === 0) return []
  const ids = rows.map((r) => r.id)
  const lastIds = rows.map((r) => r.last_message_id).filter((id): id is string => !!id)
  const [participants, lasts, hidden] = await Promise.all([
    participantsOf(deps.database, ids),
    findMessageViews(deps.database, lastIds),
    hiddenAmong(deps.database, userId, lastIds),
  ])
  const byConversation = new Map<string, ParticipantRow[]>()
  for (const p of participants) {
    const list = byConversation.get(p.conversation_id) ?? []
    list.push(p)
    byConversation.set(p.conversation_id, list)
  }
  const lastById = new Map(lasts.map((m) => [m.id, m]))
  const now = deps.clock.now()
  return Promise.all(
    rows.map(async (c) => {
      let last = c.last_message_id ? lastById.get(c.last_message_id) : undefined
      if (
        last &&
        (hidden.has(last.id) || Number(last.seq) <= Number(c.cleared_seq) || last.deleted_at !== null)
      ) {
        last =
          Number(c.last_seq) > Number(c.cleared_seq)
            ? await newestVisibleMessage(deps.database, c.id, userId, Number(c.cleared_seq))
            : undefined
      }
      const members = byConversation.get(c.id) ?? []
      const shown = participantCap ? members.slice(0, participantCap) : members
      return conversationJson(c, userId, shown, members.length, last, now)
    }),
  )
}

/** `GET /conversations` and `/conversations/archived`: a page of the caller's list. */
export async function listConversations(
  deps: Deps,
  userId: string,
  params: { limit?: number; offset?: number; archived: boolean },
) {
  const limit = Math.min(Math.max(Math.trunc(params.limit ?? 50), 1), 500)
  const offset = Math.max(Math.trunc(params.offset ?? 0), 0)
  if (deps.database.dialect === "postgres") {
    // One statement (listPage); the rest as renderConversations.
    const filter = { userId, archived: params.archived, limit, offset }
    const page = await listPage(deps.database, filter, listParticipantCap)
    const now = deps.clock.now()
    const conversations = await Promise.all(
      page.rows.map(async (c) => {
        let last = c.last ?? undefined
        if (last && (c.last_hidden || Number(last.seq) <= Number(c.cleared_seq) || last.deleted_at !== null))
          last =
            Number(c.last_seq) > Number(c.cleared_seq)
              ? await newestVisibleMessage(deps.database, c.id, userId, Number(c.cleared_seq))
              : undefined
        return conversationJson(c, userId, c.participants ?? [], Number(c.participant_count), last, now)
      }),
    )
    return { conversations, total: page.total, limit, offset }
  }
  const [rows, total] = await Promise.all([
    listMemberships(deps.database, { userId, archived: params.archived, limit, offset }),
    countMemberships(deps.database, userId, params.archived),
  ])
  return {
    conversations: await renderConversations(deps, userId, rows, listParticipantCap),
    total,
    limit,
    offset,
  }
}

/** `GET /conversations/:id`: one conversation for a member (403 for others, 404 when unknown). */
export async function getConversation(deps: Deps, userId: string, conversationId: string) {
  const membership = await requireMembership(deps, conversationId, userId)
  return (await renderConversations(deps, userId, [membership]))[0]!
}

/** Body of `POST /conversations`. */
export type CreateConversationInput = {
  type?: string
  participant_ids?: string[]
  participantIds?: string[]
  name?: string | null
  avatar_url?: string | null
  description?: string | null
}

/**
 * Creates a conversation. DIRECT (anything but "GROUP") needs exactly one other existing user and returns the
 * existing chat of the pair when there is one (a unique key makes two concurrent creates meet). GROUP makes
 * the caller FOUNDER and the others MEMBER. Announces the new memberships.
 */
export async function createConversation(deps: Deps, userId: string, input: CreateConversationInput) {
  const { db, dialect } = deps.database
  const type: ConversationType = String(input.type ?? "").toUpperCase() === "GROUP" ? "GROUP" : "DIRECT"
  const requested = input.participant_ids ?? input.participantIds ?? []
  const others = [...new Set(requested.filter((id) => typeof id === "string" && id !== userId))]
  if (type === "DIRECT" && others.length !== 1)
    throw badRequest(
      "conversation.invalid_participants",
      "A direct conversation needs exactly one other participant",
    )
  if (others.length > 1000)
    throw badRequest("conversation.too_many_participants", "At most 1000 participants")
  const known = await existingUserIds(db, others)
  const unknown = others.filter((id) => !known.has(id))
  if (unknown.length) throw notFound("user.not_found", "User not found")
  await assertCanStartConversation(deps, userId, type, others)
  const now = deps.clock.now()

  if (type === "DIRECT") {
    const other = others[0]!
    const directKey = [userId, other].sort().join(" ")
    const id = Bun.randomUUIDv7()
    const result = await db.transaction().execute(async (trx) => {
      await trx
        .insertInto("conversations")
        .values({
          id,
          type,
          name: null,
          avatar_url: null,
          description: null,
          created_by: userId,
          direct_key: directKey,
          created_at: now,
          updated_at: now,
        })
        .onConflict((oc) => oc.column("direct_key").doNothing())
        .execute()
      const conversation = await trx
        .selectFrom("conversations")
        .select("id")
        .where("direct_key", "=", directKey)
        .executeTakeFirstOrThrow()
      const present = await trx
        .selectFrom("conversation_members")
        .select("user_id")
        .where("conversation_id", "=", conversation.id)
        .execute()
      const missing = [userId, other].filter((u) => !present.some((p) => p.user_id === u))
      if (missing.length)
        await trx
          .insertInto("conversation_members")
          .values(
            missing.map((u) => ({
              conversation_id: conversation.id,
              user_id: u,
              role: "MEMBER" as const,
              joined_at: now,
              updated_at: now,
            })),
          )
          .onConflict((oc) => oc.columns(["conversation_id", "user_id"]).doNothing())
          .execute()
      // Re-opening a chat the caller had deleted brings it back into their list.
      await updateMemberState(trx, conversation.id, userId, { hidden: false }, now)
      const positions = await appendChanges(
        trx,
        dialect,
        missing.map((u) => ({
          conversationId: conversation.id,
          kind: "member.added" as const,
          data: { user_id: u },
        })),
        now,
      )
      return { conversationId: conversation.id, added: missing, positions }
    })
    announceMembers(deps, result.conversationId, result.added, [], result.positions, true)
    return getConversation(deps, userId, result.conversationId)
  }

  const id = Bun.randomUUIDv7()
  const members = [userId, ...others]
  const positions = await db.transaction().execute(async (trx) => {
    await trx
      .insertInto("conversations")
      .values({
        id,
        type,
        name: input.name ?? null,
        avatar_url: input.avatar_url ?? null,
        description: input.description ?? null,
        created_by: userId,
        direct_key: null,
        created_at: now,
        updated_at: now,
      })
      .execute()
    for (let i = 0; i < members.length; i += 500)
      await trx
        .insertInto("conversation_members")
        .values(
          members.slice(i, i + 500).map((u) => ({
            conversation_id: id,
            user_id: u,
            role: (u === userId ? "FOUNDER" : "MEMBER") as MemberRole,
            joined_at: now,
            updated_at: now,
          })),
        )
        .execute()
    return appendChanges(
      trx,
      dialect,
      members.map((u) => ({ conversationId: id, kind: "member.added" as const, data: { user_id: u } })),
      now,
    )
  })
  announceMembers(deps, id, members, [], positions, false)
  return getConversation(deps, userId, id)
}

/**
 * Blocks (CONTRACT A3): no direct chat, and no group that puts the caller together with someone, when either
 * blocked the other. The existing direct chat is refused too.
 */
async function assertCanStartConversation(
  deps: Deps,
  userId: string,
  type: ConversationType,
  others: string[],
) {
  for (const other of others) {
    const block = await blockBetween(deps.database, userId, other)
    if (block === "blocked_them")
      throw forbidden(
        "conversation.blocked",
        type === "DIRECT"
          ? "You have blocked this user. Unblock them to send messages."
          : "You have blocked one of these users. Unblock them to add them.",
      )
    if (block === "blocked_me")
      throw forbidden(
        "conversation.blocked",
        type === "DIRECT" ? "You cannot send messages to this user." : "You cannot add one of these users.",
      )
  }
}

/** Announces membership changes: first `membership.changed` (the hub updates who gets what), then the feed event. */
function announceMembers(
  deps: Deps,
  conversationId: string,
  added: string[],
  removed: string[],
  positions: number[],
  direct: boolean,
) {
  if (added.length === 0 && removed.length === 0) return
  deps.events.emit({ type: "membership.changed", conversationId, added, removed, direct })
  const cursor = positions.length ? encodeCursor(Math.max(...positions)) : undefined
  if (added.length)
    deps.events.emit({
      type: "conversation",
      conversationId,
      name: "conversation:member_added",
      data: { conversation_id: conversationId, conversationId, user_ids: added, userIds: added },
      cursor,
    })
  if (removed.length)
    deps.events.emit({
      type: "users",
      userIds: removed,
      name: "conversation:member_removed",
      data: { conversation_id: conversationId, conversationId, user_ids: removed, userIds: removed },
      cursor,
    })
}

/**
 * `DELETE /conversations/:id`. In a GROUP it is leaving the group, with the same rules and system message as
 * `POST /groups/:id/leave` (the founder must hand over first). A DIRECT chat is "deleted for me": history
 * cleared and out of the list until the other person writes again, so the pair stays reachable and keeps one
 * conversation.
 */
export async function leaveConversation(deps: Deps, userId: string, conversationId: string) {
  const membership = await requireMembership(deps, conversationId, userId, { hide: true })
  if (membership.type === "GROUP") {
    await leaveGroup(deps, userId, conversationId)
    return { success: true, message: "Left conversation" }
  }
  await changeMemberState(deps, userId, membership, {
    hidden: true,
    archived: false,
    cleared_seq: Number(membership.last_seq),
    last_read_seq: Math.max(Number(membership.last_read_seq), Number(membership.last_seq)),
  })
  return { success: true, message: "Left conversation" }
}

/** Applies a change to the caller's own membership row, records it in their feed and tells their other devices. */
async function changeMemberState(
  deps: Deps,
  userId: string,
  membership: MembershipView,
  patch: MemberStatePatch,
) {
  const { db, dialect } = deps.database
  const now = deps.clock.now()
  const [pos] = await db.transaction().execute(async (trx) => {
    await updateMemberState(trx, membership.id, userId, patch, now)
    return appendChanges(
      trx,
      dialect,
      [{ conversationId: membership.id, userId, kind: "conversation.state" }],
      now,
    )
  })
  const updated = (await findMembership(deps.database, membership.id, userId))!
  const state = memberStateJson(updated, now)
  deps.events.emit({
    type: "users",
    userIds: [userId],
    name: "conversation:updated",
    data: state,
    cursor: encodeCursor(pos!),
  })
  return state
}

/** The caller's own state of a conversation (flags and watermarks), both cases. */
export function memberStateJson(m: MembershipView, now: number) {
  const muted = m.muted_until !== null && Number(m.muted_until) > now
  const mutedUntil = muted && Number(m.muted_until) !== mutedForever ? iso(m.muted_until) : null
  return {
    conversation_id: m.id,
    conversationId: m.id,
    is_muted: muted,
    isMuted: muted,
    muted_until: mutedUntil,
    mutedUntil,
    is_archived: !!m.archived,
    isArchived: !!m.archived,
    is_favorite: !!m.favourite,
    isFavourite: !!m.favourite,
    isFavorite: !!m.favourite,
    is_pinned: m.pinned_at !== null,
    isPinned: m.pinned_at !== null,
    cleared_seq: Number(m.cleared_seq),
    clearedSeq: Number(m.cleared_seq),
    last_read_seq: Number(m.last_read_seq),
    lastReadSeq: Number(m.last_read_seq),
    hidden: !!m.hidden && Number(m.last_seq) <= Number(m.cleared_seq),
  }
}

/** The per-user flag operations of `PUT /conversations/:id/<op>` and `DELETE /conversations/:id/clear`. */
export type FlagOperation =
  | { op: "archive" | "unarchive" | "unmute" | "pin" | "unpin" | "clear" }
  | { op: "mute"; until?: number | null }
  | { op: "favorite"; value?: boolean }

/** Applies a per-user flag operation (CONTRACT A3: never global). */
export async function updateConversationFlag(
  deps: Deps,
  userId: string,
  conversationId: string,
  operation: FlagOperation,
) {
  const membership = await requireMembership(deps, conversationId, userId, { hide: true })
  const now = deps.clock.now()
  let patch: MemberStatePatch
  let message: string
  switch (operation.op) {
    case "archive":
      ;[patch, message] = [{ archived: true }, "Conversation archived"]
      break
    case "unarchive":
      ;[patch, message] = [{ archived: false }, "Conversation unarchived"]
      break
    case "mute": {
      const until = operation.until ?? mutedForever
      if (until <= now) throw badRequest("conversation.invalid_mute", "until must be in the future")
      ;[patch, message] = [{ muted_until: until }, "Conversation muted"]
      break
    }
    case "unmute":
      ;[patch, message] = [{ muted_until: null }, "Conversation unmuted"]
      break
    case "favorite": {
      const value = operation.value ?? !membership.favourite
      ;[patch, message] = [{ favourite: value }, value ? "Added to favorites" : "Removed from favorites"]
      break
    }
    case "pin":
      ;[patch, message] = [{ pinned_at: now }, "Conversation pinned"]
      break
    case "unpin":
      ;[patch, message] = [{ pinned_at: null }, "Conversation unpinned"]
      break
    case "clear": {
      const last = Number(membership.last_seq)
      ;[patch, message] = [
        { cleared_seq: last, last_read_seq: Math.max(last, Number(membership.last_read_seq)) },
        "Chat history cleared",
      ]
      break
    }
  }
  const state = await changeMemberState(deps, userId, membership, patch)
  return { success: true, message, ...state }
}
