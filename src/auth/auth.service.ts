import type { Kysely } from "kysely"
import {
  findUserById,
  findUserByPhone,
  insertUser,
  latestVerificationStatus,
  touchLastSeen,
  updateUser,
  type UserRow,
} from "../accounts/users.repository.ts"
import { toUserFull, type UserFull } from "../accounts/users.view.ts"
import type { Database } from "../db/schema.ts"
import type { Deps } from "../deps.ts"
import { badRequest, conflict, notFound, unauthorized } from "../errors.ts"
import { checkCode, codeRefusedError, issueCode } from "./otp.ts"
import {
  endSessions,
  findLiveSession,
  findLiveSessionByRefreshHash,
  insertSession,
  listLiveSessions,
  touchSession,
} from "./sessions.repository.ts"
import { hashRefreshToken, newRefreshSalt, refreshTokenFor, signAccessToken } from "./tokens.ts"
import { iso } from "../clock.ts"

/** Who is calling an authenticated route: the user, their current role and the session of the token. */
export type Principal = { userId: string; role: UserRow["role"]; sessionId: string }

/** Where a request comes from, for sessions and rate limits. */
export type ClientInfo = {
  ip: string | null
  userAgent: string | null
  deviceName?: string
  platform?: string
  /** Whose live session the request's bearer token names (sign-ins from that device keep the session). */
  session?: { userId: string; sessionId: string }
}

/** The login response (CONTRACT §2.1): tokens plus the user, with the `token` alias the app reads on verify-phone. */
export type AuthResult = {
  access_token: string
  refresh_token: string
  token: string
  token_type: "bearer"
  user: UserFull
}

const limits = (deps: Deps) => deps.config.rate_limit

/** Counts a request against a rate limit (per IP or per phone). */
const limit = (
  deps: Deps,
  name: string,
  key: string | null,
  rule: Deps["config"]["rate_limit"]["login_per_ip"],
) => {
  if (key) deps.rateLimits.hit(`${name}:${key}`, rule)
}

/** argon2id through Bun.password (runs off the event loop). */
export const hashPassword = (password: string) => Bun.password.hash(password, { algorithm: "argon2id" })

let dummyHash: Promise<string> | undefined
/** Verifies a password; with no stored hash it still spends the same time, so timing does not tell who exists. */
async function passwordMatches(password: string, hash: string | null): Promise<boolean> {
  if (!hash) {
    await Bun.password
      .verify(password, await (dummyHash ??= hashPassword("not-a-password")))
      .catch(() => false)
    return false
  }
  return Bun.password.verify(password, hash).catch(() => false)
}

/** The caller's full profile (UserFull). */
export async function userFull(deps: Deps, user: UserRow): Promise<UserFull> {
  const verification = await latestVerificationStatus(deps.database.db, user.id)
  return toUserFull(user, {
    isOnline: deps.presence.isOnline(user.id),
    verificationStatus: verification?.status ?? "none",
  })
}

/** Loads a user that must exist (the caller of an authenticated route). */
export async function requireUser(deps: Deps, userId: string): Promise<UserRow> {
  const user = await findUserById(deps.database.db, userId)
  if (!user) throw unauthorized("auth.user_not_found", "User not found")
  return user
}

/**
 * Opens a session for a user and returns its tokens. A client that presents (as its bearer token) a live
 * session of this same user keeps that session instead: the app sends its stored token with every request,
 * so its sign-up flow (register → verify-phone → login) ends with one device in the list, not three.
 */
async function openSession(deps: Deps, db: Kysely<Database>, user: UserRow, client: ClientInfo) {
  const now = deps.clock.now()
  const expiresAt = now + deps.config.auth.refresh_token_ttl * 1000
  const sign = (sid: string) =>
    signAccessToken(
      deps.jwtSecret,
      { sub: user.id, role: user.role, sid },
      now,
      deps.config.auth.access_token_ttl,
    )
  const current =
    client.session?.userId === user.id
      ? await findLiveSession(db, client.session.sessionId, user.id, now)
      : undefined
  if (current) {
    await touchSession(db, current.id, { last_used_at: now, expires_at: expiresAt })
    return {
      sessionId: current.id,
      accessToken: sign(current.id),
      refreshToken: refreshTokenFor(deps.jwtSecret, current.id, current.refresh_salt),
    }
  }
  const sessionId = Bun.randomUUIDv7()
  const salt = newRefreshSalt()
  const refreshToken = refreshTokenFor(deps.jwtSecret, sessionId, salt)
  await insertSession(db, {
    id: sessionId,
    user_id: user.id,
    refresh_token_hash: hashRefreshToken(refreshToken),
    refresh_salt: salt,
    device_name: (client.deviceName ?? client.userAgent)?.slice(0, 200) || null,
    platform: client.platform?.slice(0, 50) || null,
    ip: client.ip,
    now,
    expires_at: expiresAt,
  })
  return { sessionId, accessToken: sign(sessionId), refreshToken }
}

async function authResult(deps: Deps, userId: string, tokens: { accessToken: string; refreshToken: string }) {
  const user = await requireUser(deps, userId)
  return {
    access_token: tokens.accessToken,
    refresh_token: tokens.refreshToken,
    token: tokens.accessToken,
    token_type: "bearer" as const,
    user: await userFull(deps, user),
  }
}

/** Ends sessions of a user (all, or `ids`) and, after commit, tells realtime to close their sockets. */
export async function endUserSessions(deps: Deps, userId: string, ids?: string[]): Promise<string[]> {
  const ended = await endSessions(deps.database.db, userId, deps.clock.now(), ids)
  announceEnded(deps, userId, ended)
  return ended
}

function announceEnded(deps: Deps, userId: string, sessionIds: string[]) {
  if (sessionIds.length) deps.events.emit({ type: "session.ended", userId, sessionIds })
}

/**
 * The phone number was just proven with a code. The first proof of an account that was registered before
 * that code was even sent also drops what its registrant set up without proof (sessions, password): someone
 * who registered another person's number cannot keep the account once the owner signs in.
 */
async function markPhoneProven(deps: Deps, db: Kysely<Database>, user: UserRow, codeIssuedAt: number) {
  if (user.is_verified) return [] as string[]
  const now = deps.clock.now()
  const unproven = user.created_at < codeIssuedAt
  await updateUser(
    db,
    user.id,
    unproven ? { is_verified: true, password_hash: null } : { is_verified: true },
    now,
  )
  return unproven ? endSessions(db, user.id, now) : []
}

/** POST /auth/send-verification: sends a sign-in code to any number (registered or not: no enumeration). */
export async function sendVerificationCode(deps: Deps, phone: string, client: ClientInfo) {
  limit(deps, "send_code_ip", client.ip, limits(deps).send_code_per_ip)
  limit(deps, "send_code_phone", phone, limits(deps).send_code_per_phone)
  const code = (await issueCode(deps, phone, "login"))!
  const minutes = Math.round(deps.config.auth.otp_ttl / 60)
  await deps.sms.send(phone, `Your URGE code is ${code}. It expires in ${minutes} minutes.`)
  return { success: true, message: "Verification code sent" }
}

/** POST /auth/register: a new account (password optional), signed in on this device. */
export async function register(
  deps: Deps,
  input: { phone: string; password?: string; displayName?: string; email?: string; code?: string },
  client: ClientInfo,
): Promise<AuthResult> {
  limit(deps, "register_ip", client.ip, limits(deps).register_per_ip)
  const { db } = deps.database
  if (await findUserByPhone(db, input.phone))
    throw conflict("auth.phone_taken", "Phone number already registered")
  const email = input.email?.trim().toLowerCase() || null
  if (email && (await db.selectFrom("users").select("id").where("email", "=", email).executeTakeFirst()))
    throw conflict("user.email_taken", "This email is already used by another account.")
  let verified = false
  if (input.code) {
    const check = await checkCode(deps, db, input.phone, "login", input.code, false)
    if (!check.ok) throw codeRefusedError(check.reason, 400)
    verified = true
  }
  const passwordHash = input.password ? await hashPassword(input.password) : null
  const id = Bun.randomUUIDv7()
  const tokens = await db
    .transaction()
    .execute(async (trx) => {
      await insertUser(trx, {
        id,
        phone_number: input.phone,
        display_name: input.displayName?.trim() || null,
        email,
        password_hash: passwordHash,
        is_verified: verified,
        now: deps.clock.now(),
      })
      return openSession(deps, trx, (await findUserById(trx, id))!, client)
    })
    .catch((error) => {
      // Two registrations at once: the unique indexes decide.
      const message = String((error as Error).message)
      if (/unique|duplicate/i.test(message))
        throw /email/i.test(message)
          ? conflict("user.email_taken", "This email is already used by another account.")
          : conflict("auth.phone_taken", "Phone number already registered")
      throw error
    })
  deps.logger.info("user registered", { user_id: id })
  return authResult(deps, id, tokens)
}

/**
 * POST /auth/verify-phone: checks a sign-in code without consuming it (the app logs in with the same code
 * next). For an existing account it marks the phone verified and signs in; otherwise only confirms the code.
 */
export async function verifyPhone(deps: Deps, phone: string, code: string, client: ClientInfo) {
  limit(deps, "verify_ip", client.ip, limits(deps).verify_per_ip)
  limit(deps, "verify_phone", phone, limits(deps).verify_per_phone)
  const { db } = deps.database
  const check = await checkCode(deps, db, phone, "login", code, false)
  if (!check.ok) throw codeRefusedError(check.reason, 400)
  const user = await findUserByPhone(db, phone)
  if (!user) return { success: true, message: "Phone verified successfully" }
  const { tokens, ended } = await db.transaction().execute(async (trx) => {
    const ended = await markPhoneProven(deps, trx, user, check.issuedAt)
    return { ended, tokens: await openSession(deps, trx, user, client) }
  })
  announceEnded(deps, user.id, ended)
  return {
    success: true,
    message: "Phone verified successfully",
    ...(await authResult(deps, user.id, tokens)),
  }
}

/** POST /auth/login: with a sign-in code (consumed) or a password. */
export async function login(
  deps: Deps,
  input: { phone: string; code?: string; password?: string },
  client: ClientInfo,
): Promise<AuthResult> {
  limit(deps, "login_ip", client.ip, limits(deps).login_per_ip)
  limit(deps, "login_phone", input.phone, limits(deps).login_per_phone)
  const { db } = deps.database
  if (!input.code && !input.password)
    throw badRequest("auth.credentials_required", "Verification code or password required")
  const user = await findUserByPhone(db, input.phone)
  if (input.code) {
    const code = input.code
    // With no account the code is only checked, not used up: the person registers next with the same code.
    const check = await checkCode(deps, db, input.phone, "login", code, !!user)
    if (!check.ok) throw codeRefusedError(check.reason, 401)
    // The code proves the number; only now may we say that no account uses it.
    if (!user) throw unauthorized("auth.user_not_found", "User not found. Please register first.")
    const { tokens, ended } = await db.transaction().execute(async (trx) => {
      const ended = await markPhoneProven(deps, trx, user, check.issuedAt)
      await touchLastSeen(trx, user.id, deps.clock.now())
      return { ended, tokens: await openSession(deps, trx, user, client) }
    })
    announceEnded(deps, user.id, ended)
    return authResult(deps, user.id, tokens)
  }
  if (!(await passwordMatches(input.password!, user?.password_hash ?? null)) || !user)
    throw unauthorized("auth.invalid_credentials", "Invalid phone number or password")
  const tokens = await db.transaction().execute(async (trx) => {
    await touchLastSeen(trx, user.id, deps.clock.now())
    return openSession(deps, trx, user, client)
  })
  return authResult(deps, user.id, tokens)
}

/**
 * POST /auth/refresh: a new access token for a live session, which slides its expiry. The same refresh token
 * comes back unless rotation is configured (the app never stores a new one: CONTRACT §1).
 */
export async function refresh(deps: Deps, refreshToken: string): Promise<AuthResult> {
  // Not rate limited: a refresh token has 256 random bits (nothing to guess), and the app refreshes on
  // every 401, so a per-IP budget would log out users sharing a carrier's NAT.
  const { db } = deps.database
  const now = deps.clock.now()
  const session = await findLiveSessionByRefreshHash(db, hashRefreshToken(refreshToken), now)
  const user = session && (await findUserById(db, session.user_id))
  if (!session || !user) throw unauthorized("auth.invalid_refresh_token", "Invalid or expired refresh token")
  const salt = deps.config.auth.rotate_refresh_tokens ? newRefreshSalt() : null
  const rotated = salt ? refreshTokenFor(deps.jwtSecret, session.id, salt) : refreshToken
  await touchSession(db, session.id, {
    last_used_at: now,
    expires_at: now + deps.config.auth.refresh_token_ttl * 1000,
    ...(salt ? { refresh_token_hash: hashRefreshToken(rotated), refresh_salt: salt } : {}),
  })
  const accessToken = signAccessToken(
    deps.jwtSecret,
    { sub: user.id, role: user.role, sid: session.id },
    now,
    deps.config.auth.access_token_ttl,
  )
  return {
    access_token: accessToken,
    refresh_token: rotated,
    token: accessToken,
    token_type: "bearer",
    user: await userFull(deps, user),
  }
}

/** POST /auth/logout: ends the caller's session; its tokens stop working at once. */
export async function logout(deps: Deps, principal: Principal) {
  await endUserSessions(deps, principal.userId, [principal.sessionId])
  return { success: true, message: "Logged out successfully" }
}

/** GET /auth/sessions: the caller's live sessions (devices). */
export async function listSessions(deps: Deps, principal: Principal) {
  const rows = await listLiveSessions(deps.database.db, principal.userId, deps.clock.now())
  return {
    sessions: rows.map((s) => ({
      id: s.id,
      device_name: s.device_name,
      platform: s.platform,
      ip: s.ip,
      created_at: iso(s.created_at)!,
      last_used_at: iso(s.last_used_at)!,
      expires_at: iso(s.expires_at)!,
      current: s.id === principal.sessionId,
    })),
  }
}

/** DELETE /auth/sessions/:id: ends one of the caller's sessions. */
export async function revokeSession(deps: Deps, principal: Principal, sessionId: string) {
  const ended = await endUserSessions(deps, principal.userId, [sessionId])
  if (!ended.length) throw notFound("auth.session_not_found", "Session not found")
  return { success: true, message: "Session revoked" }
}

const forgotAnswer = {
  success: true,
  message: "If this number has an account, a reset code has been sent.",
}

/**
 * POST /auth/forgot-password: sends a reset code when the number has an account. The answer, its timing and
 * its limits are the same either way (no enumeration): the SMS leaves in the background.
 */
export async function forgotPassword(deps: Deps, phone: string, client: ClientInfo) {
  limit(deps, "reset_ip", client.ip, limits(deps).reset_per_ip)
  limit(deps, "reset_phone", phone, limits(deps).reset_per_phone)
  const user = await findUserByPhone(deps.database.db, phone)
  if (!user) return forgotAnswer
  const code = await issueCode(deps, phone, "reset", { quietCooldown: true })
  if (code) {
    const minutes = Math.round(deps.config.auth.otp_ttl / 60)
    deps.sms
      .send(phone, `Your URGE password reset code is ${code}. It expires in ${minutes} minutes.`)
      .catch(() => {}) // the driver logged it; the answer must not differ
  }
  return forgotAnswer
}

/** POST /auth/verify-reset-code: checks a reset code without consuming it. */
export async function verifyResetCode(deps: Deps, phone: string, code: string, client: ClientInfo) {
  limit(deps, "verify_ip", client.ip, limits(deps).verify_per_ip)
  limit(deps, "verify_phone", phone, limits(deps).verify_per_phone)
  const check = await checkCode(deps, deps.database.db, phone, "reset", code, false)
  if (!check.ok) throw codeRefusedError(check.reason, 400)
  return { success: true, message: "Code verified" }
}

/** POST /auth/reset-password: consumes the reset code, sets the new password and ends every session. */
export async function resetPassword(
  deps: Deps,
  input: { phone: string; code: string; newPassword: string },
  client: ClientInfo,
) {
  limit(deps, "reset_ip", client.ip, limits(deps).reset_per_ip)
  limit(deps, "reset_phone", input.phone, limits(deps).reset_per_phone)
  const { db } = deps.database
  const passwordHash = await hashPassword(input.newPassword)
  const check = await checkCode(deps, db, input.phone, "reset", input.code, true)
  if (!check.ok) throw codeRefusedError(check.reason, 400)
  const user = await findUserByPhone(db, input.phone)
  if (!user) throw codeRefusedError("invalid", 400)
  const now = deps.clock.now()
  const ended = await db.transaction().execute(async (trx) => {
    await updateUser(trx, user.id, { password_hash: passwordHash, is_verified: true }, now)
    return endSessions(trx, user.id, now)
  })
  announceEnded(deps, user.id, ended)
  deps.logger.info("password reset", { user_id: user.id, sessions_ended: ended.length })
  return { success: true, message: "Password reset successfully. Please log in again." }
}
