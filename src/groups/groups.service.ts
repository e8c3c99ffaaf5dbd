import { liteViews } from "../accounts/users.service.ts"
import { iso } from "../clock.ts"
import { findMembership, type MembershipView } from "../conversations/conversations.repository.ts"
import type { MemberRole } from "../conversations/conversations.tables.ts"
import type { Deps } from "../deps.ts"
import { AppError, badRequest, conflict, forbidden, notFound } from "../errors.ts"
import { findMessageViews } from "../messages/messages.repository.ts"
import { serializeFor } from "../messages/messages.service.ts"
import { realtimeMessage } from "../messages/messages.views.ts"
import { blockedEitherWayAmong } from "../settings/settings.repository.ts"
import { encodeCursor } from "../sync/sync.cursor.ts"
import { appendChanges, type NewChange } from "../sync/sync.repository.ts"
import {
  conversationType,
  countMembers,
  decideJoinRequest,
  deleteMember,
  ensureSettings,
  type EventRow,
  findEvent,
  findGroup,
  findJoinRequest,
  findSettingsByInvite,
  findUserJoinRequest,
  type GroupRow,
  type GroupSettingsRow,
  insertMembers,
  insertSystemMessage,
  type JoinRequestRow,
  listEvents,
  listJoinRequests,
  listMemberRows,
  memberRole,
  newInviteCode,
  openJoinRequests,
  setMemberRole,
  type SettingsPatch,
  updateSettings,
  upsertAttendance,
} from "./groups.repository.ts"
import { assignableRoles, canManageMembers, isAdminRole, roleDisplay, rolePriority } from "./groups.roles.ts"
import type { AttendanceStatus, JoinRequestStatus } from "./groups.tables.ts"

/** Errors of the groups feature. */
export const groupErrors = {
  notFound: () => notFound("group.not_found", "Group not found"),
  notMember: () => forbidden("group.not_member", "You are not a member of this group"),
  founderOnly: (what: string) => forbidden("group.founder_only", `Only the Founder can ${what}`),
  memberNotFound: () => notFound("group.member_not_found", "Member not found"),
  inviteInvalid: () => notFound("group.invite_invalid", "Invalid or disabled invite link"),
  founderCannotLeave: () =>
    forbidden("group.founder_cannot_leave", "Founder cannot leave. Transfer ownership or delete the group."),
}

const invalid = (field: string, msg: string) => new AppError(422, "request.invalid", `${field}: ${msg}`)

/**
 * Runs a write on a group. When it fails because the group went meanwhile (deleted by its founder between our
 * check and the write: a foreign key or a missing row), the answer is the 404 a later request would get,
 * never a 500. `stillThere` checks for a narrower thing (an event) when given.
 */
async function whileGroupExists<T>(
  deps: Deps,
  groupId: string,
  write: () => Promise<T>,
  stillThere?: () => Promise<boolean>,
  gone: () => AppError = groupErrors.notFound,
): Promise<T> {
  try {
    return await write()
  } catch (error) {
    if (error instanceof AppError) throw error
    if ((await conversationType(deps.database.db, groupId)) !== "GROUP") throw groupErrors.notFound()
    if (stillThere && !(await stillThere())) throw gone()
    throw error
  }
}

/**
 * The caller's membership of a group, or an error: 404 `group.not_found` when there is no such group
 * (unknown or malformed id, or a direct conversation), 403 `group.not_member` when it exists and the caller is
 * not in it — 404 for both with `hide` (leave answers 404 to non-members, CONTRACT §2.5).
 */
export async function requireGroupMember(
  deps: Deps,
  groupId: string,
  userId: string,
  options: { hide?: boolean } = {},
): Promise<MembershipView> {
  const membership = await findMembership(deps.database, groupId, userId)
  if (membership) {
    if (membership.type !== "GROUP") throw groupErrors.notFound()
    return membership
  }
  if (options.hide || (await conversationType(deps.database.db, groupId)) !== "GROUP")
    throw groupErrors.notFound()
  throw groupErrors.notMember()
}

// ---------------------------------------------------------------------------------------------- views

/** The settings object of GroupResponse (CONTRACT §2.5, plus the app type's `id` and `conversation_id`). */
export function settingsJson(s: GroupSettingsRow) {
  return {
    id: s.conversation_id,
    conversation_id: s.conversation_id,
    is_public: !!s.is_public,
    allow_member_invites: !!s.allow_member_invites,
    require_admin_approval: !!s.require_admin_approval,
    only_admins_can_post: !!s.only_admins_can_post,
    only_admins_can_edit_info: !!s.only_admins_can_edit_info,
    invite_link: s.invite_link,
    invite_link_enabled: !!s.invite_link_enabled,
    mute_notifications: !!s.mute_notifications,
    theme_color: s.theme_color,
    created_at: iso(s.created_at),
    updated_at: iso(s.updated_at),
  }
}

/** GroupMember (CONTRACT §2.5) with the camelCase keys GroupChat tries; privacy and blocks apply as in /users. */
async function membersJson(deps: Deps, viewerId: string, groupId: string) {
  const rows = await listMemberRows(deps.database.db, groupId)
  rows.sort(
    (a, b) =>
      rolePriority(a.role) - rolePriority(b.role) ||
      Number(a.joined_at) - Number(b.joined_at) ||
      (a.user_id < b.user_id ? -1 : 1),
  )
  const lite = await liteViews(
    deps,
    viewerId,
    rows.map((r) => ({ ...r, id: r.user_id })),
  )
  return rows.map((r, i) => {
    const view = lite[i]!
    return {
      user_id: r.user_id,
      userId: r.user_id,
      id: r.user_id,
      display_name: r.display_name,
      displayName: r.display_name,
      avatar_url: view.avatar_url,
      phone_number: r.phone_number,
      role: r.role,
      role_display: roleDisplay[r.role] ?? "Member",
      is_verified: !!r.is_verified,
      is_online: view.is_online,
      last_seen: view.last_seen,
      joined_at: iso(r.joined_at),
    }
  })
}

/** A GroupMember as JSON. */
export type GroupMemberJson = Awaited<ReturnType<typeof membersJson>>[number]

function groupJson(
  group: GroupRow,
  settings: GroupSettingsRow,
  members: GroupMemberJson[],
  memberCount: number,
  currentRole: MemberRole | null,
) {
  const founder = members.find((m) => m.role === "FOUNDER")
  return {
    id: group.id,
    conversation_id: group.id,
    name: group.name,
    description: group.description,
    avatar_url: group.avatar_url,
    created_by: group.created_by,
    founder_id: founder?.user_id ?? null,
    founder_name: founder ? (founder.display_name ?? founder.phone_number) : null,
    settings: settingsJson(settings),
    members,
    member_count: memberCount,
    current_user_role: currentRole,
    current_user_role_display: currentRole ? roleDisplay[currentRole] : null,
    created_at: iso(group.created_at),
    updated_at: iso(group.updated_at),
  }
}

/** GroupResponse as JSON. */
export type GroupJson = ReturnType<typeof groupJson>

/** GroupResponse for a member. */
async function renderGroup(
  deps: Deps,
  userId: string,
  groupId: string,
  role: MemberRole,
): Promise<GroupJson> {
  const db = deps.database.db
  const [group, settings, members] = await Promise.all([
    findGroup(db, groupId),
    whileGroupExists(deps, groupId, () => ensureSettings(db, groupId, deps.clock.now())),
    membersJson(deps, userId, groupId),
  ])
  if (!group) throw groupErrors.notFound()
  return groupJson(group, settings, members, members.length, role)
}

/** Tells the group's members (live only) that its info, settings or roles changed; clients re-read it. */
function announceGroupUpdated(deps: Deps, groupId: string, changes: Record<string, unknown>) {
  deps.events.emit({
    type: "conversation",
    conversationId: groupId,
    name: "group:updated",
    data: { group_id: groupId, groupId, conversation_id: groupId, conversationId: groupId, changes },
  })
}

/**
 * Membership announcements, the same as messaging's: `membership.changed` first (the hub moves who gets the
 * conversation's events), then `conversation:member_added` to the members, or `conversation:member_removed` to
 * the removed users and to those who stay.
 */
function announceMembership(
  deps: Deps,
  groupId: string,
  added: string[],
  removed: string[],
  positions: number[],
) {
  if (added.length === 0 && removed.length === 0) return
  deps.events.emit({ type: "membership.changed", conversationId: groupId, added, removed })
  const cursor = positions.length ? encodeCursor(Math.max(...positions)) : undefined
  if (added.length)
    deps.events.emit({
      type: "conversation",
      conversationId: groupId,
      name: "conversation:member_added",
      data: { conversation_id: groupId, conversationId: groupId, user_ids: added, userIds: added },
      cursor,
    })
  if (removed.length) {
    const data = { conversation_id: groupId, conversationId: groupId, user_ids: removed, userIds: removed }
    deps.events.emit({ type: "users", userIds: removed, name: "conversation:member_removed", data, cursor })
    deps.events.emit({
      type: "conversation",
      conversationId: groupId,
      name: "conversation:member_removed",
      data,
      cursor,
    })
  }
}

const addedChanges = (groupId: string, userIds: string[]): NewChange[] =>
  userIds.map((u) => ({ conversationId: groupId, kind: "member.added", data: { user_id: u } }))

const removedChanges = (groupId: string, userId: string): NewChange[] => [
  { conversationId: groupId, kind: "member.removed", data: { user_id: userId } },
  // The removed user no longer sees the group's rows: tell them on their own.
  { conversationId: groupId, userId, kind: "member.removed", data: { user_id: userId } },
]

/** Refuses to put together users where either blocked the other (CONTRACT A3: no group invites by blocked users). */
async function assertNotBlocked(deps: Deps, userId: string, others: string[]) {
  const blocked = await blockedEitherWayAmong(deps.database.db, userId, others)
  if (blocked.size) throw forbidden("group.blocked", "You cannot add a user you blocked or who blocked you")
}

async function assertUsersExist(deps: Deps, ids: string[]) {
  if (ids.length === 0) return
  const rows = await deps.database.db.selectFrom("users").select("id").where("id", "in", ids).execute()
  if (rows.length !== ids.length) throw notFound("user.not_found", "User not found")
}

const uniqueIds = (ids: unknown[] | undefined, except: string) => [
  ...new Set((ids ?? []).filter((id): id is string => typeof id === "string" && id !== except)),
]

// ---------------------------------------------------------------------------------------------- groups

/** Body of `POST /groups`. */
export type CreateGroupInput = {
  name: string
  description?: string | null
  avatar_url?: string | null
  member_ids?: string[]
  is_public?: boolean
  allow_member_invites?: boolean
  require_admin_approval?: boolean
}

/** `POST /groups`: the caller becomes FOUNDER, the others MEMBER; settings with a fresh invite code. */
export async function createGroup(deps: Deps, userId: string, input: CreateGroupInput): Promise<GroupJson> {
  const { db, dialect } = deps.database
  const others = uniqueIds(input.member_ids, userId)
  await assertUsersExist(deps, others)
  await assertNotBlocked(deps, userId, others)
  const id = Bun.randomUUIDv7()
  const members = [userId, ...others]
  const now = deps.clock.now()
  const positions = await db.transaction().execute(async (trx) => {
    await trx
      .insertInto("conversations")
      .values({
        id,
        type: "GROUP",
        name: input.name,
        avatar_url: input.avatar_url ?? null,
        description: input.description ?? null,
        created_by: userId,
        direct_key: null,
        created_at: now,
        updated_at: now,
      })
      .execute()
    await insertMembers(trx, id, [userId], "FOUNDER", now)
    await insertMembers(trx, id, others, "MEMBER", now)
    await ensureSettings(trx, id, now, {
      is_public: input.is_public,
      allow_member_invites: input.allow_member_invites,
      require_admin_approval: input.require_admin_approval,
    })
    return appendChanges(trx, dialect, addedChanges(id, members), now)
  })
  announceMembership(deps, id, members, [], positions)
  return renderGroup(deps, userId, id, "FOUNDER")
}

/** `GET /groups/:id` and `/groups/conversation/:id`: members only. */
export async function getGroup(deps: Deps, userId: string, groupId: string): Promise<GroupJson> {
  const membership = await requireGroupMember(deps, groupId, userId)
  return renderGroup(deps, userId, groupId, membership.role)
}

/** `GET /groups/:id/members`: members only, by role priority. */
export async function getMembers(deps: Deps, userId: string, groupId: string) {
  await requireGroupMember(deps, groupId, userId)
  return membersJson(deps, userId, groupId)
}

/** Body of `PUT /groups/:id`. */
export type UpdateGroupInput = { name?: string; description?: string | null; avatar_url?: string | null }

/** `PUT /groups/:id`: admins, or any member while `only_admins_can_edit_info` is off. */
export async function updateGroup(deps: Deps, userId: string, groupId: string, input: UpdateGroupInput) {
  const membership = await requireGroupMember(deps, groupId, userId)
  const db = deps.database.db
  const now = deps.clock.now()
  if (!isAdminRole(membership.role)) {
    const settings = await ensureSettings(db, groupId, now)
    if (settings.only_admins_can_edit_info)
      throw forbidden("group.not_allowed", "Only Founder and Co-founders can update group")
  }
  const patch: { name?: string; description?: string | null; avatar_url?: string | null } = {}
  if (input.name !== undefined) patch.name = input.name
  if (input.description !== undefined) patch.description = input.description
  if (input.avatar_url !== undefined) patch.avatar_url = input.avatar_url
  if (Object.keys(patch).length) {
    await db
      .updateTable("conversations")
      .set({ ...patch, updated_at: now })
      .where("id", "=", groupId)
      .execute()
    announceGroupUpdated(deps, groupId, patch)
  }
  return renderGroup(deps, userId, groupId, membership.role)
}

/** What members are told when the founder deletes a group (live and on resume). */
export const groupDeletedMessage = "This group has been deleted by the founder"

/**
 * `DELETE /groups/:id` (FOUNDER): removes the group and everything in it (messages, settings, events, requests
 * cascade). Every former member gets a `group.deleted` feed row and the live `group:deleted`.
 */
export async function deleteGroup(deps: Deps, userId: string, groupId: string) {
  const membership = await requireGroupMember(deps, groupId, userId)
  if (membership.role !== "FOUNDER") throw groupErrors.founderOnly("delete the group")
  const { db, dialect } = deps.database
  const now = deps.clock.now()
  const { members, positions } = await db.transaction().execute(async (trx) => {
    const rows = await trx
      .selectFrom("conversation_members")
      .select("user_id")
      .where("conversation_id", "=", groupId)
      .execute()
    const members = rows.map((r) => r.user_id)
    await trx.deleteFrom("conversations").where("id", "=", groupId).execute()
    const positions = await appendChanges(
      trx,
      dialect,
      members.map((u) => ({
        conversationId: groupId,
        userId: u,
        kind: "group.deleted" as const,
        data: { group_id: groupId, message: groupDeletedMessage },
      })),
      now,
    )
    return { members, positions }
  })
  // To the members by name (the conversation is gone), before the hub forgets them.
  deps.events.emit({
    type: "conversation",
    conversationId: groupId,
    userIds: members,
    name: "group:deleted",
    data: {
      group_id: groupId,
      groupId,
      conversation_id: groupId,
      conversationId: groupId,
      message: groupDeletedMessage,
    },
    cursor: positions.length ? encodeCursor(Math.max(...positions)) : undefined,
  })
  deps.events.emit({ type: "membership.changed", conversationId: groupId, added: [], removed: members })
  return { success: true, message: "Group deleted" }
}

// ---------------------------------------------------------------------------------------------- settings

/** Body of `PUT /groups/:id/settings` (the app sends one key at a time). */
export type SettingsInput = Partial<{
  is_public: boolean
  allow_member_invites: boolean
  require_admin_approval: boolean
  only_admins_can_post: boolean
  only_admins_can_edit_info: boolean
  invite_link_enabled: boolean
  mute_notifications: boolean
  theme_color: string | null
}>

const settingKeys = [
  "is_public",
  "allow_member_invites",
  "require_admin_approval",
  "only_admins_can_post",
  "only_admins_can_edit_info",
  "invite_link_enabled",
  "mute_notifications",
  "theme_color",
] as const

/** `PUT /groups/:id/settings` (FOUNDER): returns the bare settings object. */
export async function changeSettings(deps: Deps, userId: string, groupId: string, input: SettingsInput) {
  const membership = await requireGroupMember(deps, groupId, userId)
  if (membership.role !== "FOUNDER") throw groupErrors.founderOnly("update group settings")
  const db = deps.database.db
  const now = deps.clock.now()
  await ensureSettings(db, groupId, now)
  const patch: SettingsPatch = {}
  for (const key of settingKeys)
    if (input[key] !== undefined) (patch as Record<string, unknown>)[key] = input[key]
  if (Object.keys(patch).length) {
    await updateSettings(db, groupId, patch, now)
    announceGroupUpdated(deps, groupId, { settings: patch })
  }
  return settingsJson(await ensureSettings(db, groupId, now))
}

/** `POST /groups/:id/regenerate-invite-link` (FOUNDER): the old code stops working at once. */
export async function regenerateInviteLink(deps: Deps, userId: string, groupId: string) {
  const membership = await requireGroupMember(deps, groupId, userId)
  if (membership.role !== "FOUNDER") throw groupErrors.founderOnly("regenerate the invite link")
  const db = deps.database.db
  const now = deps.clock.now()
  await ensureSettings(db, groupId, now)
  const code = newInviteCode()
  await updateSettings(db, groupId, { invite_link: code }, now)
  return { success: true, invite_link: code }
}

// ---------------------------------------------------------------------------------------------- members

/**
 * `POST /groups/:id/members`. Member managers (FOUNDER, MODERATOR, RECRUITER) add directly; other members
 * only while `allow_member_invites` is on, and when `require_admin_approval` is on their additions become join
 * requests for a manager to approve. Present members are skipped; blocks either way refuse the call.
 */
export async function addMembers(deps: Deps, userId: string, groupId: string, userIds: string[]) {
  const membership = await requireGroupMember(deps, groupId, userId)
  const { db, dialect } = deps.database
  const now = deps.clock.now()
  const settings = await ensureSettings(db, groupId, now)
  const manager = canManageMembers(membership.role)
  if (!manager && !settings.allow_member_invites)
    throw forbidden("group.not_allowed", "Only the Founder, Moderators and Recruiters can add members")
  const ids = uniqueIds(userIds, userId)
  await assertUsersExist(deps, ids)
  await assertNotBlocked(deps, userId, ids)
  if (!manager && settings.require_admin_approval) {
    const present = await db
      .selectFrom("conversation_members")
      .select("user_id")
      .where("conversation_id", "=", groupId)
      .where("user_id", "in", ids.length ? ids : [""])
      .execute()
    const candidates = ids.filter((id) => !present.some((p) => p.user_id === id))
    const requests = await whileGroupExists(deps, groupId, () =>
      openJoinRequests(db, groupId, candidates, userId, now),
    )
    return {
      success: true,
      added: 0,
      requested: candidates.length,
      request_ids: [...requests.values()],
      message: "An admin must approve the new members",
    }
  }
  const { added, positions } = await whileGroupExists(deps, groupId, () =>
    db.transaction().execute(async (trx) => {
      const added = await insertMembers(trx, groupId, ids, "MEMBER", now)
      return { added, positions: await appendChanges(trx, dialect, addedChanges(groupId, added), now) }
    }),
  )
  announceMembership(deps, groupId, added, [], positions)
  return { success: true, added: added.length, user_ids: added }
}

/**
 * `DELETE /groups/:id/members/:userId`. Removing oneself is leaving (the FOUNDER cannot); removing another
 * member takes a member manager, and nobody removes the FOUNDER.
 */
export async function removeMember(deps: Deps, userId: string, groupId: string, targetId: string) {
  if (targetId === userId) {
    await leaveGroup(deps, userId, groupId)
    return { success: true, message: "Member removed" }
  }
  const membership = await requireGroupMember(deps, groupId, userId)
  if (!canManageMembers(membership.role))
    throw forbidden("group.not_allowed", "Only the Founder, Moderators and Recruiters can remove members")
  const { db, dialect } = deps.database
  const role = await memberRole(db, groupId, targetId)
  if (!role) throw groupErrors.memberNotFound()
  if (role === "FOUNDER") throw forbidden("group.founder_protected", "Cannot remove the Founder")
  const now = deps.clock.now()
  const positions = await whileGroupExists(deps, groupId, () =>
    db.transaction().execute(async (trx) => {
      if (!(await deleteMember(trx, groupId, targetId))) return null
      return appendChanges(trx, dialect, removedChanges(groupId, targetId), now)
    }),
  )
  if (!positions) throw groupErrors.memberNotFound()
  announceMembership(deps, groupId, [], [targetId], positions)
  return { success: true, message: "Member removed" }
}

/** `PUT /groups/:id/members/:userId/role` (FOUNDER): any role but FOUNDER (that moves by transfer). */
export async function assignRole(
  deps: Deps,
  userId: string,
  groupId: string,
  targetId: string,
  role: string,
) {
  const membership = await requireGroupMember(deps, groupId, userId)
  if (membership.role !== "FOUNDER") throw groupErrors.founderOnly("assign roles")
  if (!assignableRoles.includes(role as MemberRole))
    throw badRequest(
      "group.invalid_role",
      role === "FOUNDER"
        ? "FOUNDER cannot be assigned; transfer ownership instead"
        : `Invalid role. Use one of: ${assignableRoles.join(", ")}`,
    )
  const db = deps.database.db
  const current = await memberRole(db, groupId, targetId)
  if (!current) throw groupErrors.memberNotFound()
  if (current === "FOUNDER") throw forbidden("group.founder_protected", "Cannot change the Founder's role")
  const newRole = role as MemberRole
  if (!(await setMemberRole(db, groupId, targetId, newRole, deps.clock.now(), undefined, "FOUNDER")))
    throw groupErrors.memberNotFound()
  announceGroupUpdated(deps, groupId, { member_role: { user_id: targetId, role: newRole } })
  return {
    success: true,
    message: `Role updated to ${roleDisplay[newRole]}`,
    user_id: targetId,
    role: newRole,
    role_display: roleDisplay[newRole],
  }
}

/** `POST /groups/:id/transfer-ownership` (FOUNDER): the target becomes FOUNDER, the old one MEMBER. */
export async function transferOwnership(deps: Deps, userId: string, groupId: string, newFounderId?: string) {
  if (!newFounderId) throw badRequest("group.new_founder_required", "new_founder_id is required")
  const membership = await requireGroupMember(deps, groupId, userId)
  if (membership.role !== "FOUNDER") throw groupErrors.founderOnly("transfer ownership")
  if (newFounderId === userId) throw badRequest("group.already_founder", "You are already the Founder")
  const db = deps.database.db
  if (!(await memberRole(db, groupId, newFounderId))) throw groupErrors.memberNotFound()
  const now = deps.clock.now()
  await db.transaction().execute(async (trx) => {
    // Step down first, only if still FOUNDER: two transfers at once cannot make two founders.
    if (!(await setMemberRole(trx, groupId, userId, "MEMBER", now, "FOUNDER")))
      throw groupErrors.founderOnly("transfer ownership")
    if (!(await setMemberRole(trx, groupId, newFounderId, "FOUNDER", now))) throw groupErrors.memberNotFound()
    await trx
      .updateTable("conversations")
      .set({ created_by: newFounderId, updated_at: now })
      .where("id", "=", groupId)
      .execute()
  })
  announceGroupUpdated(deps, groupId, { founder_id: newFounderId })
  return { success: true, message: "Ownership transferred", new_founder_id: newFounderId }
}

/**
 * `POST /groups/:id/leave`: 404 for non-members, 403 for the FOUNDER. In one transaction the membership goes
 * and a SYSTEM message "<name> left the group" is stored; the remaining members get it as `message:received`
 * (dual-case, like every message), the leaver gets `conversation:member_removed`.
 */
export async function leaveGroup(deps: Deps, userId: string, groupId: string) {
  const membership = await requireGroupMember(deps, groupId, userId, { hide: true })
  if (membership.role === "FOUNDER") throw groupErrors.founderCannotLeave()
  const { db, dialect } = deps.database
  const user = await db
    .selectFrom("users")
    .select(["display_name", "phone_number"])
    .where("id", "=", userId)
    .executeTakeFirstOrThrow()
  const now = deps.clock.now()
  const result = await whileGroupExists(deps, groupId, () =>
    db.transaction().execute(async (trx) => {
      if (!(await deleteMember(trx, groupId, userId))) return null
      const message = await insertSystemMessage(
        trx,
        groupId,
        userId,
        `${user.display_name || user.phone_number} left the group`,
        now,
      )
      const positions = await appendChanges(
        trx,
        dialect,
        [
          ...removedChanges(groupId, userId),
          { conversationId: groupId, kind: "message.created", messageId: message.id },
        ],
        now,
      )
      return { message, positions }
    }),
  )
  if (!result) throw groupErrors.notFound()
  announceMembership(deps, groupId, [], [userId], result.positions.slice(0, 2))
  const [view] = await findMessageViews(deps.database, [result.message.id])
  if (view) {
    const [json] = await serializeFor(deps.database, [view], userId)
    deps.events.emit({
      type: "conversation",
      conversationId: groupId,
      name: "message:received",
      data: realtimeMessage(json!),
      cursor: encodeCursor(result.positions[2]!),
    })
  }
  return { success: true, message: "Left group" }
}

// ---------------------------------------------------------------------------------------------- invites

/**
 * `GET /groups/join/:code`: the preview of an invite (any signed-in user). Top-level GroupResponse keys (the
 * original's shape), `group` (the app's `data.group || data`), `is_member`, and the caller's pending request.
 * Outsiders see the name, description, avatar, settings and count, not the member list.
 */
export async function previewInvite(deps: Deps, userId: string, code: string) {
  const db = deps.database.db
  const settings = await findSettingsByInvite(db, code)
  if (!settings || !settings.invite_link_enabled) throw groupErrors.inviteInvalid()
  const groupId = settings.conversation_id
  const [group, role, count, request] = await Promise.all([
    findGroup(db, groupId),
    memberRole(db, groupId, userId),
    countMembers(db, groupId),
    findUserJoinRequest(db, groupId, userId),
  ])
  if (!group) throw groupErrors.inviteInvalid()
  const members = role ? await membersJson(deps, userId, groupId) : []
  const json = groupJson(group, settings, members, count, role ?? null)
  return {
    ...json,
    group: json,
    is_member: !!role,
    join_request_status: role ? null : (request?.status ?? null),
  }
}

/**
 * `POST /groups/join/:code`. Joins as MEMBER; with `require_admin_approval` on, opens a join request instead
 * and answers 202 `{status: "pending"}`. 400 when already a member (CONTRACT §2.5).
 */
export async function joinByInvite(deps: Deps, userId: string, code: string) {
  const { db, dialect } = deps.database
  const settings = await findSettingsByInvite(db, code)
  if (!settings || !settings.invite_link_enabled) throw groupErrors.inviteInvalid()
  const groupId = settings.conversation_id
  if (await memberRole(db, groupId, userId))
    throw badRequest("group.already_member", "You are already a member of this group")
  const now = deps.clock.now()
  if (settings.require_admin_approval) {
    const requests = await whileGroupExists(deps, groupId, () =>
      openJoinRequests(db, groupId, [userId], null, now),
    )
    return {
      accepted: true as const,
      body: {
        success: true,
        status: "pending" as const,
        pending: true,
        group_id: groupId,
        request_id: requests.get(userId)!,
        message: "Your request to join was sent. An admin must approve it.",
      },
    }
  }
  const { added, positions } = await whileGroupExists(deps, groupId, () =>
    db.transaction().execute(async (trx) => {
      const added = await insertMembers(trx, groupId, [userId], "MEMBER", now)
      return { added, positions: await appendChanges(trx, dialect, addedChanges(groupId, added), now) }
    }),
  )
  if (!added.length) throw badRequest("group.already_member", "You are already a member of this group")
  announceMembership(deps, groupId, added, [], positions)
  return {
    accepted: false as const,
    body: { success: true, status: "joined" as const, group_id: groupId, message: "Joined group" },
  }
}

// ---------------------------------------------------------------------------------------------- join requests

function joinRequestJson(r: JoinRequestRow) {
  return {
    id: r.id,
    group_id: r.conversation_id,
    user_id: r.user_id,
    display_name: r.display_name,
    phone_number: r.phone_number,
    avatar_url: r.avatar_url,
    status: r.status,
    invited_by: r.invited_by,
    decided_by: r.decided_by,
    decided_at: iso(r.decided_at),
    created_at: iso(r.created_at),
  }
}

async function requireManager(deps: Deps, userId: string, groupId: string) {
  const membership = await requireGroupMember(deps, groupId, userId)
  if (!canManageMembers(membership.role))
    throw forbidden(
      "group.not_allowed",
      "Only the Founder, Moderators and Recruiters can review join requests",
    )
  return membership
}

/** `GET /groups/:id/join-requests?status=` (member managers): pending by default, oldest first. */
export async function getJoinRequests(
  deps: Deps,
  userId: string,
  groupId: string,
  status: JoinRequestStatus = "pending",
) {
  await requireManager(deps, userId, groupId)
  const rows = await listJoinRequests(deps.database.db, groupId, status)
  return { requests: rows.map(joinRequestJson), total: rows.length }
}

/**
 * Approves or rejects a pending join request (member managers). Approval adds the user as MEMBER, announced
 * like any join; a request decided already is 409; blocks between the decider and the user do not matter (the
 * user asked).
 */
export async function decideRequest(
  deps: Deps,
  userId: string,
  groupId: string,
  requestId: string,
  decision: "approved" | "rejected",
) {
  await requireManager(deps, userId, groupId)
  const { db, dialect } = deps.database
  const request = await findJoinRequest(db, groupId, requestId)
  if (!request) throw notFound("group.request_not_found", "Join request not found")
  if (request.status !== "pending")
    throw conflict("group.request_decided", `This join request was already ${request.status}`)
  const now = deps.clock.now()
  const outcome = await whileGroupExists(deps, groupId, () =>
    db.transaction().execute(async (trx) => {
      if (!(await decideJoinRequest(trx, requestId, decision, userId, now))) return null
      if (decision === "rejected") return { added: [] as string[], positions: [] as number[] }
      const added = await insertMembers(trx, groupId, [request.user_id], "MEMBER", now)
      return { added, positions: await appendChanges(trx, dialect, addedChanges(groupId, added), now) }
    }),
  )
  if (!outcome) throw conflict("group.request_decided", "This join request was already decided")
  announceMembership(deps, groupId, outcome.added, [], outcome.positions)
  const decided = (await findJoinRequest(db, groupId, requestId))!
  return {
    success: true,
    message: decision === "approved" ? "Join request approved" : "Join request rejected",
    request: joinRequestJson(decided),
  }
}

// ---------------------------------------------------------------------------------------------- events

/** The Event of CONTRACT §2.5 (UTC times with Z), with RSVP counts and the viewer's own answer. */
function eventJson(e: EventRow) {
  const going = Number(e.going_count)
  return {
    id: e.id,
    conversation_id: e.conversation_id,
    group_id: e.conversation_id,
    title: e.title,
    description: e.description,
    location: e.location,
    start_time: iso(e.start_time),
    end_time: iso(e.end_time),
    is_online: !!e.is_online,
    meeting_link: e.meeting_link,
    max_attendees: e.max_attendees,
    // Those going (the original counted every answer, "not_going" included).
    attendees_count: going,
    going_count: going,
    maybe_count: Number(e.maybe_count),
    not_going_count: Number(e.not_going_count),
    my_status: e.my_status,
    created_by: e.created_by,
    creator_name: e.creator_name,
    created_at: iso(e.created_at),
    updated_at: iso(e.updated_at),
  }
}

/** `GET /groups/:id/events` (members): a bare array, soonest first. */
export async function getEvents(deps: Deps, userId: string, groupId: string) {
  await requireGroupMember(deps, groupId, userId)
  return (await listEvents(deps.database.db, groupId, userId)).map(eventJson)
}

/** Body of `POST /groups/:id/events`. */
export type EventInput = {
  title: string
  description?: string | null
  location?: string | null
  start_time: string
  end_time?: string | null
  is_online?: boolean
  meeting_link?: string | null
  max_attendees?: number | null
}

/** An ISO 8601 time as UTC milliseconds; a time without a zone is read as UTC (never the server's zone). */
function parseTime(field: string, value: string): number {
  const zoned = /(?:Z|[+-]\d{2}:?\d{2})$/i.test(value) || !value.includes("T") ? value : `${value}Z`
  const ms = /^\d{4}-\d{2}-\d{2}/.test(value) ? Date.parse(zoned) : NaN
  if (!Number.isFinite(ms)) throw invalid(field, "must be an ISO 8601 date-time")
  return ms
}

/** `POST /groups/:id/events` (FOUNDER and co-founders). */
export async function createEvent(deps: Deps, userId: string, groupId: string, input: EventInput) {
  const membership = await requireGroupMember(deps, groupId, userId)
  if (!isAdminRole(membership.role))
    throw forbidden("group.not_allowed", "Only Founder and Co-founders can create events")
  const start = parseTime("start_time", input.start_time)
  const end = input.end_time ? parseTime("end_time", input.end_time) : null
  if (end !== null && end < start) throw invalid("end_time", "must not be before start_time")
  const db = deps.database.db
  const now = deps.clock.now()
  const id = Bun.randomUUIDv7()
  await whileGroupExists(deps, groupId, () =>
    db
      .insertInto("group_events")
      .values({
        id,
        conversation_id: groupId,
        created_by: userId,
        title: input.title,
        description: input.description ?? null,
        location: input.location ?? null,
        start_time: start,
        end_time: end,
        is_online: input.is_online === true,
        meeting_link: input.meeting_link ?? null,
        max_attendees: input.max_attendees ?? null,
        created_at: now,
        updated_at: now,
      })
      .execute(),
  )
  // The group (and so the event, by cascade) may have been deleted since the insert committed.
  const row = await findEvent(db, groupId, id, userId)
  if (!row) throw groupErrors.notFound()
  const event = eventJson(row)
  deps.events.emit({
    type: "conversation",
    conversationId: groupId,
    name: "group:event_created",
    data: { group_id: groupId, groupId, event },
  })
  return event
}

/** `DELETE /groups/:id/events/:eventId`: its creator or the FOUNDER. */
export async function deleteEvent(deps: Deps, userId: string, groupId: string, eventId: string) {
  const membership = await requireGroupMember(deps, groupId, userId)
  const db = deps.database.db
  const event = await findEvent(db, groupId, eventId, userId)
  if (!event) throw notFound("group.event_not_found", "Event not found")
  if (event.created_by !== userId && membership.role !== "FOUNDER")
    throw forbidden("group.not_allowed", "Only the event's creator or the Founder can delete it")
  await db.deleteFrom("group_events").where("id", "=", eventId).execute()
  return { success: true, message: "Event deleted" }
}

/** `POST /groups/:id/events/:eventId/attend` (members): stores or replaces the caller's RSVP. */
export async function attendEvent(
  deps: Deps,
  userId: string,
  groupId: string,
  eventId: string,
  status: AttendanceStatus,
) {
  await requireGroupMember(deps, groupId, userId)
  const db = deps.database.db
  if (!(await findEvent(db, groupId, eventId, userId)))
    throw notFound("group.event_not_found", "Event not found")
  const eventGone = () => notFound("group.event_not_found", "Event not found")
  await whileGroupExists(
    deps,
    groupId,
    () => upsertAttendance(db, eventId, userId, status, deps.clock.now()),
    async () => !!(await findEvent(db, groupId, eventId, userId)),
    eventGone,
  )
  // The event (or its group) may have been deleted since the answer was stored.
  const row = await findEvent(db, groupId, eventId, userId)
  if (!row) throw eventGone()
  const event = eventJson(row)
  return { success: true, status, attendees_count: event.attendees_count, event }
}
