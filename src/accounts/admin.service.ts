import { endUserSessions, hashPassword } from "../auth/auth.service.ts"
import { invalidPhoneMessage, isPhoneNumber, normalizePhone } from "../auth/phone.ts"
import { iso } from "../clock.ts"
import type { Deps } from "../deps.ts"
import { badRequest, conflict, notFound } from "../errors.ts"
import { type UserRole, userRoles } from "./accounts.tables.ts"
import { decideVerification, listPendingVerifications } from "./account.service.ts"
import { findUserById, findUserByPhone, insertUser, updateUser } from "./users.repository.ts"

/** Administration of accounts, for the CLI (`urge users …`): the same rules the API uses, no second copy. */

const phoneOf = (raw: string) => {
  if (!isPhoneNumber(raw)) throw badRequest("user.invalid_phone", invalidPhoneMessage)
  return normalizePhone(raw)
}

async function userByPhone(deps: Deps, raw: string) {
  const user = await findUserByPhone(deps.database.db, phoneOf(raw))
  if (!user) throw notFound("user.not_found", `No account uses ${phoneOf(raw)}`)
  return user
}

const roleOf = (raw: string): UserRole => {
  const role = raw.toUpperCase().replace(/-/g, "_") as UserRole
  if (!userRoles.includes(role))
    throw badRequest("user.invalid_role", `Role must be one of ${userRoles.join(", ")}`)
  return role
}

/** Sets an account's role (the only way to grant FOUNDER or CO_FOUNDER). Returns the old and new role. */
export async function setRoleByPhone(deps: Deps, phone: string, role: string) {
  const user = await userByPhone(deps, phone)
  const next = roleOf(role)
  await updateUser(deps.database.db, user.id, { role: next }, deps.clock.now())
  deps.logger.info("role changed", { user_id: user.id, from: user.role, to: next })
  return { id: user.id, phone_number: user.phone_number, from: user.role, to: next }
}

/** Creates an account (phone counted as verified: an operator vouches for it). */
export async function createUserByAdmin(
  deps: Deps,
  input: { phone: string; displayName?: string; password?: string; role?: string },
) {
  const phone = phoneOf(input.phone)
  const role = input.role ? roleOf(input.role) : "REGULAR"
  if (input.password !== undefined && (input.password.length < 8 || input.password.length > 128))
    throw badRequest("user.invalid_password", "Password must be 8 to 128 characters long")
  const { db } = deps.database
  if (await findUserByPhone(db, phone)) throw conflict("auth.phone_taken", "Phone number already registered")
  const id = Bun.randomUUIDv7()
  const now = deps.clock.now()
  await insertUser(db, {
    id,
    phone_number: phone,
    display_name: input.displayName?.trim() || null,
    email: null,
    password_hash: input.password ? await hashPassword(input.password) : null,
    is_verified: true,
    now,
  })
  if (role !== "REGULAR") await updateUser(db, id, { role }, now)
  return (await findUserById(db, id))!
}

/** Accounts, oldest first, optionally filtered by a name or phone substring. */
export async function listUsersForAdmin(deps: Deps, options: { limit: number; search?: string }) {
  let query = deps.database.db
    .selectFrom("users")
    .select(["id", "phone_number", "display_name", "role", "is_verified", "created_at"])
    .orderBy("created_at")
    .orderBy("id")
    .limit(options.limit)
  if (options.search) {
    const s = `%${options.search.toLowerCase()}%`
    query = query.where((eb) =>
      eb.or([eb(eb.fn("lower", ["display_name"]), "like", s), eb("phone_number", "like", s)]),
    )
  }
  const rows = await query.execute()
  return rows.map((r) => ({ ...r, is_verified: !!r.is_verified, created_at: iso(r.created_at)! }))
}

/** Ends every session of an account; its tokens stop working at once. Returns how many ended. */
export async function revokeSessionsByPhone(deps: Deps, phone: string) {
  const user = await userByPhone(deps, phone)
  const ended = await endUserSessions(deps, user.id)
  deps.logger.info("sessions revoked by an operator", { user_id: user.id, count: ended.length })
  return { id: user.id, phone_number: user.phone_number, ended: ended.length }
}

/** Pending verification requests, for an operator. */
export const pendingVerificationsForAdmin = (deps: Deps) => listPendingVerifications(deps)

/** Approves or rejects the pending verification request of the account with this phone number. */
export async function reviewVerificationByPhone(deps: Deps, phone: string, action: string, reason?: string) {
  if (action !== "approve" && action !== "reject")
    throw badRequest("verification.invalid_action", 'The decision must be "approve" or "reject"')
  const user = await userByPhone(deps, phone)
  const result = await decideVerification(deps, null, user.id, { action, rejection_reason: reason })
  return { phone_number: user.phone_number, ...result }
}
