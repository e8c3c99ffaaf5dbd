import { type Principal, requireUser, userFull } from "../auth/auth.service.ts"
import type { Deps } from "../deps.ts"
import { badRequest, conflict, forbidden, notFound } from "../errors.ts"
import type { UserRole } from "./accounts.tables.ts"
import {
  emailTaken,
  findUserById,
  latestVerificationStatus,
  updateUser,
  type UserPatch,
} from "./users.repository.ts"
import { socialLinksOf } from "./users.view.ts"
import { iso } from "../clock.ts"

/** The social platforms a profile links to (CONTRACT §2.8). */
export const socialPlatforms = ["instagram", "twitter", "linkedin", "tiktok", "youtube", "facebook"] as const
export type SocialPlatform = (typeof socialPlatforms)[number]

/** "  @ada " → "ada"; empty → null (cleared). */
const cleanHandle = (v: string | null | undefined) => {
  const s = (v ?? "").trim().replace(/^@+/, "").trim()
  return s ? s : null
}

/** A profile change as the app sends it (EditProfile, ProfileScreen, /account/profile). */
export type ProfileInput = {
  display_name?: string
  bio?: string | null
  avatar?: string | null
  avatar_url?: string | null
  email?: string | null
  /** Per platform: a handle sets it, null or "" clears it; platforms not mentioned stay. null clears all. */
  social_links?: Record<string, string | null | undefined> | null
}

/** Applies a profile change; returns the caller's UserFull. Emails are unique (409). */
export async function updateProfile(deps: Deps, principal: Principal, input: ProfileInput) {
  const { db } = deps.database
  const user = await requireUser(deps, principal.userId)
  const patch: UserPatch = {}
  if (input.display_name !== undefined) {
    const name = input.display_name.trim()
    if (!name) throw badRequest("user.display_name_empty", "Display name cannot be empty")
    patch.display_name = name
  }
  if (input.bio !== undefined) patch.bio = input.bio?.trim() || null
  const avatar = input.avatar_url !== undefined ? input.avatar_url : input.avatar
  if (avatar !== undefined) patch.avatar_url = avatar?.trim() || null
  if (input.email !== undefined) {
    const email = input.email?.trim().toLowerCase() || null
    if (email && (await emailTaken(db, email, user.id)))
      throw conflict("user.email_taken", "This email is already used by another account.")
    patch.email = email
  }
  if (input.social_links !== undefined) {
    const given = input.social_links ?? {}
    const links = input.social_links === null ? {} : socialLinksOf(user)
    for (const platform of socialPlatforms) {
      if (!(platform in given)) continue
      const handle = cleanHandle(given[platform])
      if (handle) links[platform] = handle
      else delete links[platform]
    }
    patch.social_links = JSON.stringify(links)
  }
  if (Object.keys(patch).length) await updateUser(db, user.id, patch, deps.clock.now())
  return userFull(deps, await requireUser(deps, user.id))
}

/** GET /account/social-links. */
export async function readSocialLinks(deps: Deps, principal: Principal) {
  return { social_links: socialLinksOf(await requireUser(deps, principal.userId)) }
}

/** PUT /account/social-links: replaces the whole map with the non-empty handles given. */
export async function replaceSocialLinks(deps: Deps, principal: Principal, input: Record<string, unknown>) {
  const links: Record<string, string> = {}
  for (const platform of socialPlatforms) {
    const value = input[platform]
    const handle = typeof value === "string" ? cleanHandle(value) : null
    if (handle) links[platform] = handle
  }
  await updateUser(
    deps.database.db,
    principal.userId,
    { social_links: JSON.stringify(links) },
    deps.clock.now(),
  )
  return { success: true, message: "Social links updated", social_links: links }
}

/** DELETE /account/social-links/:platform. */
export async function removeSocialLink(deps: Deps, principal: Principal, platform: string) {
  if (!(socialPlatforms as readonly string[]).includes(platform))
    throw badRequest(
      "account.invalid_platform",
      `Invalid platform. Use one of: ${socialPlatforms.join(", ")}`,
    )
  const links = socialLinksOf(await requireUser(deps, principal.userId))
  if (!(platform in links)) throw notFound("account.platform_not_connected", `${platform} is not connected`)
  delete links[platform]
  await updateUser(
    deps.database.db,
    principal.userId,
    { social_links: JSON.stringify(links) },
    deps.clock.now(),
  )
  return { success: true, message: `${platform} disconnected`, social_links: links }
}

/** Roles that review verification requests. */
const reviewerRoles: readonly UserRole[] = ["FOUNDER", "CO_FOUNDER"]
/** Roles that already carry a badge (a request makes no sense). */
const badgeRoles: readonly UserRole[] = ["FOUNDER", "CO_FOUNDER", "VERIFIED"]
const minimumAccountAgeDays = 7
const dayMs = 86_400_000

/** GET /account/verification/status. */
export async function verificationStatus(deps: Deps, principal: Principal) {
  const user = await requireUser(deps, principal.userId)
  const latest = await latestVerificationStatus(deps.database.db, user.id)
  return {
    is_verified: badgeRoles.includes(user.role),
    verification_status: latest?.status ?? "none",
    requested_at: iso(latest?.created_at),
  }
}

/** POST /account/verification/request: asks for the VERIFIED badge (account at least 7 days old). */
export async function requestVerification(
  deps: Deps,
  principal: Principal,
  input: { full_name: string; reason: string; social_proof?: string | null },
) {
  const { db } = deps.database
  const user = await requireUser(deps, principal.userId)
  if (badgeRoles.includes(user.role))
    throw badRequest("verification.already_verified", "Your account is already verified")
  const latest = await latestVerificationStatus(db, user.id)
  if (latest?.status === "pending")
    throw badRequest("verification.already_pending", "You already have a pending verification request")
  const now = deps.clock.now()
  const ageDays = Math.floor((now - user.created_at) / dayMs)
  if (ageDays < minimumAccountAgeDays)
    throw badRequest(
      "verification.account_too_new",
      `Your account must be at least ${minimumAccountAgeDays} days old. Current age: ${ageDays} days`,
    )
  const id = Bun.randomUUIDv7()
  await db
    .insertInto("verification_requests")
    .values({
      id,
      user_id: user.id,
      full_name: input.full_name.trim(),
      reason: input.reason.trim(),
      social_proof: input.social_proof?.trim() || null,
      status: "pending",
      reviewed_by: null,
      reviewed_at: null,
      rejection_reason: null,
      created_at: now,
    })
    .execute()
  return {
    success: true,
    message: "Verification request submitted",
    verification_status: "pending" as const,
    requested_at: iso(now)!,
    request_id: id,
  }
}

async function requireReviewer(deps: Deps, principal: Principal) {
  if (!reviewerRoles.includes(principal.role))
    throw forbidden(
      "verification.not_reviewer",
      "Only a FOUNDER or CO_FOUNDER can review verification requests",
    )
}

/** GET /account/verification/pending (FOUNDER or CO_FOUNDER). */
export async function pendingVerifications(deps: Deps, principal: Principal) {
  await requireReviewer(deps, principal)
  return listPendingVerifications(deps)
}

/** Every pending verification request, oldest first, with what a reviewer needs to know of the user. */
export async function listPendingVerifications(deps: Deps) {
  const rows = await deps.database.db
    .selectFrom("verification_requests as r")
    .innerJoin("users as u", "u.id", "r.user_id")
    .select([
      "r.id",
      "r.user_id",
      "r.full_name",
      "r.reason",
      "r.social_proof",
      "r.status",
      "r.created_at",
      "u.display_name",
      "u.phone_number",
      "u.avatar_url",
      "u.bio",
      "u.created_at as user_created_at",
    ])
    .where("r.status", "=", "pending")
    .orderBy("r.created_at")
    .orderBy("r.id")
    .execute()
  return {
    success: true,
    requests: rows.map((r) => ({
      request_id: r.id,
      user_id: r.user_id,
      full_name: r.full_name,
      reason: r.reason,
      social_proof: r.social_proof,
      status: r.status,
      created_at: iso(r.created_at)!,
      user: {
        display_name: r.display_name,
        phone_number: r.phone_number,
        avatar_url: r.avatar_url,
        bio: r.bio,
        created_at: iso(r.user_created_at)!,
      },
    })),
    total: rows.length,
  }
}

/** POST /account/verification/review/:userId: approve (role VERIFIED) or reject a user's pending request. */
export async function reviewVerification(
  deps: Deps,
  principal: Principal,
  userId: string,
  input: { action: "approve" | "reject"; rejection_reason?: string | null },
) {
  await requireReviewer(deps, principal)
  return decideVerification(deps, principal.userId, userId, input)
}

/** Approves or rejects a user's pending request; `reviewerId` null when an operator decides through the CLI. */
export async function decideVerification(
  deps: Deps,
  reviewerId: string | null,
  userId: string,
  input: { action: "approve" | "reject"; rejection_reason?: string | null },
) {
  const { db } = deps.database
  const now = deps.clock.now()
  const approved = input.action === "approve"
  const rejectionReason = approved ? null : input.rejection_reason?.trim() || null
  const role = await db.transaction().execute(async (trx) => {
    const request = await trx
      .selectFrom("verification_requests")
      .select("id")
      .where("user_id", "=", userId)
      .where("status", "=", "pending")
      .executeTakeFirst()
    if (!request) throw notFound("verification.not_found", "No pending verification request for this user")
    await trx
      .updateTable("verification_requests")
      .set({
        status: approved ? "approved" : "rejected",
        reviewed_by: reviewerId,
        reviewed_at: now,
        rejection_reason: rejectionReason,
      })
      .where("id", "=", request.id)
      .execute()
    const user = (await findUserById(trx, userId))!
    // Approval grants VERIFIED to a REGULAR account; it never lowers a FOUNDER or CO_FOUNDER.
    if (approved && user.role === "REGULAR") await updateUser(trx, userId, { role: "VERIFIED" }, now)
    return approved && user.role === "REGULAR" ? "VERIFIED" : user.role
  })
  deps.logger.info("verification reviewed", {
    user_id: userId,
    action: input.action,
    reviewer: reviewerId ?? "cli",
  })
  return {
    success: true,
    message: approved ? "Verification approved" : "Verification rejected",
    user_id: userId,
    verification_status: approved ? ("approved" as const) : ("rejected" as const),
    is_verified: badgeRoles.includes(role),
    rejection_reason: rejectionReason,
  }
}
