import type { Principal } from "../auth/auth.service.ts"
import type { Deps } from "../deps.ts"
import { notFound } from "../errors.ts"
import { blockedEitherWayAmong, getPrivacySettingsMany } from "../settings/settings.repository.ts"
import { findUserById, findUsersByIds, listUsersPage, searchUsers, type UserRow } from "./users.repository.ts"
import { toUserLite, type UserLite } from "./users.view.ts"

type LiteRow = Pick<UserRow, "id" | "phone_number" | "display_name" | "avatar_url" | "bio" | "last_seen">

/**
 * UserLite views of `rows` as `viewerId` may see them: each person's privacy switches apply to others, and
 * a block in either direction hides presence, last seen and photo.
 */
export async function liteViews(deps: Deps, viewerId: string, rows: LiteRow[]): Promise<UserLite[]> {
  const others = rows.filter((r) => r.id !== viewerId).map((r) => r.id)
  const { db } = deps.database
  const [privacy, blocked] = await Promise.all([
    getPrivacySettingsMany(db, others),
    blockedEitherWayAmong(db, viewerId, others),
  ])
  return rows.map((row) => {
    const online = deps.presence.isOnline(row.id)
    if (row.id === viewerId) return toUserLite(row, online, null)
    if (blocked.has(row.id))
      return toUserLite(row, online, {
        show_online_status: false,
        show_last_seen: false,
        show_profile_photo: false,
      })
    return toUserLite(row, online, privacy.get(row.id) ?? null)
  })
}

/** GET /users: everyone but the caller; `total` counts everyone, the caller included (CONTRACT §5.32). */
export async function listUsers(deps: Deps, principal: Principal, limit: number, offset: number) {
  const page = await listUsersPage(deps.database.db, principal.userId, limit, offset)
  return { users: await liteViews(deps, principal.userId, page.users), total: page.total, limit, offset }
}

/** GET /users/search: by name or phone, case-insensitive; `total` is the size of this page. */
export async function findUsers(deps: Deps, principal: Principal, q: string, limit: number, offset: number) {
  const rows = await searchUsers(deps.database.db, principal.userId, q.trim(), limit, offset)
  return { users: await liteViews(deps, principal.userId, rows), total: rows.length, limit, offset }
}

/** POST /users/batch: the known users among the ids, in the order asked. */
export async function usersByIds(deps: Deps, principal: Principal, ids: string[]) {
  const unique = [...new Set(ids)]
  const rows = await findUsersByIds(deps.database.db, unique)
  const byId = new Map(rows.map((r) => [r.id, r]))
  const ordered = unique.map((id) => byId.get(id)).filter((r): r is LiteRow => !!r)
  return { users: await liteViews(deps, principal.userId, ordered) }
}

/** GET /users/:id (and /users/me). */
export async function userById(deps: Deps, principal: Principal, id: string): Promise<UserLite> {
  const user = await findUserById(deps.database.db, id)
  if (!user) throw notFound("user.not_found", "User not found")
  return (await liteViews(deps, principal.userId, [user]))[0]!
}

/** GET /users/:id/status. */
export async function userStatus(deps: Deps, principal: Principal, id: string) {
  const lite = await userById(deps, principal, id)
  return { user_id: lite.id, is_online: lite.is_online, last_seen: lite.last_seen }
}
