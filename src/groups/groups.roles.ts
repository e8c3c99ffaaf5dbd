import type { MemberRole } from "../conversations/conversations.tables.ts"

/** Group roles in priority order: members are listed in this order (CONTRACT §2.5). */
export const groupRoles: readonly MemberRole[] = [
  "FOUNDER",
  "ACCOUNTANT",
  "MODERATOR",
  "RECRUITER",
  "SUPPORT",
  "CHEERLEADER",
  "MEMBER",
]

/** Roles the FOUNDER may assign (FOUNDER itself only moves by transfer of ownership). */
export const assignableRoles: readonly MemberRole[] = groupRoles.filter((r) => r !== "FOUNDER")

/** The app's display names (CONTRACT §4.4). */
export const roleDisplay: Record<MemberRole, string> = {
  FOUNDER: "Founder",
  ACCOUNTANT: "Accountant (Co-founder)",
  MODERATOR: "Moderator (Co-founder)",
  RECRUITER: "Recruiter (Co-founder)",
  SUPPORT: "Support (Co-founder)",
  CHEERLEADER: "Cheer Leader (Co-founder)",
  MEMBER: "Member",
}

/** Sort key of a role (unknown roles last). */
export const rolePriority = (role: string): number => {
  const i = groupRoles.indexOf(role as MemberRole)
  return i === -1 ? groupRoles.length : i
}

/** The app's `isAdminRole`: FOUNDER or any co-founder (edit info, create events, post when only admins may). */
export const isAdminRole = (role: string): boolean =>
  role !== "MEMBER" && groupRoles.includes(role as MemberRole)

/** FOUNDER, MODERATOR, RECRUITER: remove members, add them whatever the settings, decide join requests. */
export const canManageMembers = (role: string): boolean =>
  role === "FOUNDER" || role === "MODERATOR" || role === "RECRUITER"
