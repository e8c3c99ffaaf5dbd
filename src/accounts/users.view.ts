import { iso } from "../clock.ts"
import type { UserRow } from "./users.repository.ts"

/** Someone's privacy switches as they apply to what others see (absent: all shown). */
export type Visibility = { show_online_status: boolean; show_last_seen: boolean; show_profile_photo: boolean }

/** The parsed social links map (`{}` when empty or unreadable). */
export function socialLinksOf(user: Pick<UserRow, "social_links">): Record<string, string> {
  try {
    const parsed = JSON.parse(user.social_links)
    return parsed && typeof parsed === "object" && !Array.isArray(parsed) ? parsed : {}
  } catch {
    return {}
  }
}

/** `UserFull` (CONTRACT §4.1): what /auth/* and /account/profile return about the caller. */
export function toUserFull(
  user: UserRow,
  extra: { isOnline: boolean; verificationStatus: "none" | "pending" | "approved" | "rejected" },
) {
  return {
    id: user.id,
    phone_number: user.phone_number,
    email: user.email,
    display_name: user.display_name,
    avatar_url: user.avatar_url,
    bio: user.bio,
    role: user.role,
    is_verified: !!user.is_verified,
    verification_status: extra.verificationStatus,
    is_online: extra.isOnline,
    last_seen: iso(user.last_seen),
    social_links: socialLinksOf(user),
    subscription_plan: "free" as const,
    subscription_expires_at: null,
    created_at: iso(user.created_at)!,
    updated_at: iso(user.updated_at)!,
  }
}

/** `UserFull` as JSON. */
export type UserFull = ReturnType<typeof toUserFull>

/**
 * `UserLite` (CONTRACT §2.2): what /users/* return about anyone. For someone other than the viewer, their
 * privacy switches hide presence, last seen and photo.
 */
export function toUserLite(
  user: Pick<UserRow, "id" | "phone_number" | "display_name" | "avatar_url" | "bio" | "last_seen">,
  isOnline: boolean,
  visibility: Visibility | null,
) {
  const v = visibility ?? { show_online_status: true, show_last_seen: true, show_profile_photo: true }
  return {
    id: user.id,
    phone_number: user.phone_number,
    display_name: user.display_name,
    avatar_url: v.show_profile_photo ? user.avatar_url : null,
    bio: user.bio,
    is_online: v.show_online_status ? isOnline : false,
    last_seen: v.show_last_seen ? iso(user.last_seen) : null,
  }
}

/** `UserLite` as JSON. */
export type UserLite = ReturnType<typeof toUserLite>
