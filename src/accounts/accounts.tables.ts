import type { ColumnType } from "kysely"
import type { Flag, Millis } from "../db/schema.ts"

/** Account roles (CONTRACT A2): FOUNDER and CO_FOUNDER only through the admin CLI, VERIFIED from an approved request. */
export type UserRole = "FOUNDER" | "CO_FOUNDER" | "VERIFIED" | "REGULAR"

/** Every role, for validation (CLI, schemas). */
export const userRoles: readonly UserRole[] = ["FOUNDER", "CO_FOUNDER", "VERIFIED", "REGULAR"]

/** `users`: one account per phone number (E.164). */
export interface UsersTable {
  id: string
  phone_number: string
  email: string | null
  password_hash: string | null
  display_name: string | null
  avatar_url: string | null
  bio: string | null
  role: ColumnType<UserRole, UserRole | undefined, UserRole>
  /** The phone number was proven with a one-time code. */
  is_verified: Flag
  /** JSON object `{platform: username}`. */
  social_links: ColumnType<string, string | undefined, string>
  last_seen: Millis | null
  created_at: Millis
  updated_at: Millis
}

/** `user_sessions`: a logged-in device; its refresh token is stored hashed. */
export interface UserSessionsTable {
  id: string
  user_id: string
  refresh_token_hash: string
  /** With the server secret, gives the session's refresh token again (a sign-in from the same device reuses it). */
  refresh_salt: string
  device_name: string | null
  platform: string | null
  ip: string | null
  created_at: Millis
  last_used_at: Millis
  expires_at: Millis
  ended_at: Millis | null
}

/** What a one-time code is for: signing in (send-verification) or resetting the password (forgot-password). */
export type OtpPurpose = "login" | "reset"

/** `otp_codes`: the live one-time code per phone and purpose (a new one replaces it), stored as an HMAC. */
export interface OtpCodesTable {
  phone_number: string
  purpose: OtpPurpose
  code_hash: string
  /** Wrong tries so far; at the limit the code is dead. */
  attempts: number
  created_at: Millis
  expires_at: Millis
  consumed_at: Millis | null
}

/** Status of an account verification (badge) request. */
export type VerificationStatus = "pending" | "approved" | "rejected"

/** `verification_requests`: a user's request for the VERIFIED badge, reviewed by a FOUNDER or CO_FOUNDER. */
export interface VerificationRequestsTable {
  id: string
  user_id: string
  full_name: string
  reason: string
  social_proof: string | null
  status: VerificationStatus
  reviewed_by: string | null
  reviewed_at: Millis | null
  rejection_reason: string | null
  created_at: Millis
}
