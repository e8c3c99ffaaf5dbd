import { findUserById } from "../accounts/users.repository.ts"
import type { Principal } from "../auth/auth.service.ts"
import type { Deps } from "../deps.ts"
import { badRequest, notFound } from "../errors.ts"
import {
  blockedIds,
  blockedUsers,
  deleteBlock,
  getNotificationSettings,
  getPrivacySettings,
  hasBlocked,
  insertBlock,
  type NotificationSettings,
  type PrivacySettings,
  type SettingsPatch,
  updateSettings,
} from "./settings.repository.ts"

/** GET /settings/privacy: the four switches and how many users the caller blocked. */
export async function readPrivacy(deps: Deps, principal: Principal) {
  const { db } = deps.database
  const settings = await getPrivacySettings(db, principal.userId)
  return { ...settings, blocked_users_count: (await blockedIds(db, principal.userId)).length }
}

/** PUT /settings/privacy: changes the given switches (any subset). */
export async function writePrivacy(deps: Deps, principal: Principal, patch: Partial<PrivacySettings>) {
  const { db } = deps.database
  await updateSettings(db, principal.userId, patch, deps.clock.now())
  return {
    success: true,
    message: "Privacy settings updated",
    settings: await getPrivacySettings(db, principal.userId),
  }
}

/** POST /settings/privacy/block/:userId. */
export async function blockUser(deps: Deps, principal: Principal, targetId: string) {
  const { db } = deps.database
  if (targetId === principal.userId) throw badRequest("settings.block_self", "You cannot block yourself")
  if (!(await findUserById(db, targetId))) throw notFound("user.not_found", "User not found")
  if (!(await insertBlock(db, principal.userId, targetId, deps.clock.now())))
    throw badRequest("settings.already_blocked", "User is already blocked")
  return { success: true, message: "User blocked", blocked_users: await blockedIds(db, principal.userId) }
}

/** DELETE /settings/privacy/unblock/:userId. */
export async function unblockUser(deps: Deps, principal: Principal, targetId: string) {
  const { db } = deps.database
  if (!(await deleteBlock(db, principal.userId, targetId)))
    throw notFound("settings.not_blocked", "User is not blocked")
  return { success: true, message: "User unblocked", blocked_users: await blockedIds(db, principal.userId) }
}

/** GET /settings/privacy/blocked. */
export async function listBlocked(deps: Deps, principal: Principal) {
  return { blocked_users: await blockedUsers(deps.database.db, principal.userId) }
}

/** GET /settings/privacy/blocked/check/:userId: both directions. */
export async function checkBlocked(deps: Deps, principal: Principal, otherId: string) {
  const { db } = deps.database
  const [mine, theirs] = await Promise.all([
    hasBlocked(db, principal.userId, otherId),
    hasBlocked(db, otherId, principal.userId),
  ])
  return { i_blocked_them: mine, they_blocked_me: theirs, is_blocked: mine || theirs }
}

/** Notification switches in both casings (CONTRACT §2.7: the app reads `settings.<snake>`, the original sent flat camel). */
function bothCasings(s: NotificationSettings) {
  const camel = {
    enabled: s.enabled,
    showPreview: s.show_preview,
    sound: s.sound,
    vibration: s.vibration,
    messageNotifications: s.message_notifications,
    groupNotifications: s.group_notifications,
  }
  return { settings: { ...s, ...camel }, ...camel }
}

/** GET /settings/notifications. */
export async function readNotifications(deps: Deps, principal: Principal) {
  return bothCasings(await getNotificationSettings(deps.database.db, principal.userId))
}

/** PUT /settings/notifications: accepts snake (the app) and camel (the original) keys. */
export async function writeNotifications(deps: Deps, principal: Principal, input: Record<string, unknown>) {
  const pick = (snake: string, camel: string) => {
    const v = input[snake] ?? input[camel]
    return typeof v === "boolean" ? v : undefined
  }
  const patch: SettingsPatch = {
    notifications_enabled: pick("enabled", "enabled"),
    notification_preview: pick("show_preview", "showPreview"),
    notification_sound: pick("sound", "sound"),
    notification_vibration: pick("vibration", "vibration"),
    message_notifications: pick("message_notifications", "messageNotifications"),
    group_notifications: pick("group_notifications", "groupNotifications"),
  }
  for (const key of Object.keys(patch) as (keyof SettingsPatch)[])
    if (patch[key] === undefined) delete patch[key]
  const { db } = deps.database
  if (Object.keys(patch).length) await updateSettings(db, principal.userId, patch, deps.clock.now())
  const now = bothCasings(await getNotificationSettings(db, principal.userId))
  return { success: true, message: "Notification settings updated", settings: now.settings }
}
