import { createHmac, randomInt, timingSafeEqual } from "node:crypto"
import type { Kysely } from "kysely"
import type { OtpPurpose } from "../accounts/accounts.tables.ts"
import type { Database } from "../db/schema.ts"
import type { Deps } from "../deps.ts"
import { AppError, tooManyRequests } from "../errors.ts"

/**
 * One-time codes (CONTRACT A2): 6 random digits, stored as an HMAC keyed with the server secret (a database
 * leak alone reveals nothing), valid `auth.otp_ttl`, dead after `auth.otp_max_attempts` wrong tries, one live
 * code per phone and purpose (a new one replaces it), at most one every `auth.otp_resend_cooldown`.
 */

const hashCode = (deps: Deps, phone: string, purpose: OtpPurpose, code: string) =>
  createHmac("sha256", deps.jwtSecret).update(`otp:${purpose}:${phone}:${code}`).digest("hex")

/** Why a code was refused. */
export type CodeRefusal = "invalid" | "expired" | "exhausted"

/**
 * Creates a new code for a phone (replacing any earlier one) and returns it, or throws 429 inside the
 * resend cool-down. With `quietCooldown` a request inside the cool-down returns null instead (forgot-password
 * must answer the same whether or not the number has an account).
 */
export async function issueCode(
  deps: Deps,
  phone: string,
  purpose: OtpPurpose,
  options: { quietCooldown?: boolean } = {},
): Promise<string | null> {
  const { db } = deps.database
  const now = deps.clock.now()
  const cooldownMs = deps.config.auth.otp_resend_cooldown * 1000
  const existing = await db
    .selectFrom("otp_codes")
    .select("created_at")
    .where("phone_number", "=", phone)
    .where("purpose", "=", purpose)
    .executeTakeFirst()
  if (existing && now - existing.created_at < cooldownMs) {
    if (options.quietCooldown) return null
    throw tooManyRequests(
      "auth.code_cooldown",
      "A code was sent a moment ago. Please wait before asking for another.",
      (existing.created_at + cooldownMs - now) / 1000,
    )
  }
  const code = String(randomInt(0, 1_000_000)).padStart(6, "0")
  const row = {
    code_hash: hashCode(deps, phone, purpose, code),
    attempts: 0,
    created_at: now,
    expires_at: now + deps.config.auth.otp_ttl * 1000,
    consumed_at: null,
  }
  await db
    .insertInto("otp_codes")
    .values({ phone_number: phone, purpose, ...row })
    .onConflict((oc) => oc.columns(["phone_number", "purpose"]).doUpdateSet(row))
    .execute()
  return code
}

/**
 * Checks a code. A wrong try is counted before comparing (so parallel guesses cannot exceed the limit) and
 * refunded when right. `consume` makes the code single-use from here on (login, reset); verify-phone and
 * verify-reset-code check without consuming (the app's sign-up flow uses one code twice).
 * Returns the code's creation time when accepted, else the reason it was refused.
 */
export async function checkCode(
  deps: Deps,
  db: Kysely<Database>,
  phone: string,
  purpose: OtpPurpose,
  code: string,
  consume: boolean,
): Promise<{ ok: true; issuedAt: number } | { ok: false; reason: CodeRefusal }> {
  const now = deps.clock.now()
  const max = deps.config.auth.otp_max_attempts
  const counted = await db
    .updateTable("otp_codes")
    .set((eb) => ({ attempts: eb("attempts", "+", 1) }))
    .where("phone_number", "=", phone)
    .where("purpose", "=", purpose)
    .where("consumed_at", "is", null)
    .where("expires_at", ">", now)
    .where("attempts", "<", max)
    .returning(["code_hash", "created_at"])
    .executeTakeFirst()
  if (!counted) {
    const row = await db
      .selectFrom("otp_codes")
      .select(["expires_at", "attempts", "consumed_at"])
      .where("phone_number", "=", phone)
      .where("purpose", "=", purpose)
      .executeTakeFirst()
    if (!row || row.consumed_at !== null) return { ok: false, reason: "invalid" }
    if (row.expires_at <= now) return { ok: false, reason: "expired" }
    return { ok: false, reason: "exhausted" }
  }
  const expected = Buffer.from(counted.code_hash, "hex")
  const given = Buffer.from(hashCode(deps, phone, purpose, code), "hex")
  if (!timingSafeEqual(expected, given)) return { ok: false, reason: "invalid" }
  // Right: refund the try and, when consuming, take the code (only one request can take it).
  const taken = await db
    .updateTable("otp_codes")
    .set((eb) => ({
      attempts: eb("attempts", "-", 1),
      ...(consume ? { consumed_at: now } : {}),
    }))
    .where("phone_number", "=", phone)
    .where("purpose", "=", purpose)
    .where("code_hash", "=", counted.code_hash)
    .where("consumed_at", "is", null)
    .executeTakeFirst()
  if (taken.numUpdatedRows === 0n) return { ok: false, reason: "invalid" }
  return { ok: true, issuedAt: counted.created_at }
}

/** The error for a refused code, with a message the app can show. */
export function codeRefusedError(reason: CodeRefusal, status: 400 | 401): AppError {
  const headers = status === 401 ? { "WWW-Authenticate": "Bearer" } : undefined
  if (reason === "expired")
    return new AppError(
      status,
      "auth.code_expired",
      "This code has expired. Please request a new one.",
      headers,
    )
  if (reason === "exhausted")
    return new AppError(
      status,
      "auth.code_exhausted",
      "Too many wrong codes. Please request a new one.",
      headers,
    )
  return new AppError(status, "auth.code_invalid", "Invalid verification code", headers)
}
