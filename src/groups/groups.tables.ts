import type { Flag, Millis } from "../db/schema.ts"

/** `group_settings`: one row per group (CONTRACT §4.4); enforced by src/groups (A3). */
export interface GroupSettingsTable {
  conversation_id: string
  is_public: Flag
  allow_member_invites: Flag
  require_admin_approval: Flag
  only_admins_can_post: Flag
  only_admins_can_edit_info: Flag
  /** The 12-character invite code. */
  invite_link: string
  invite_link_enabled: Flag
  mute_notifications: Flag
  theme_color: string | null
  created_at: Millis
  updated_at: Millis
}

/** `group_events`: a meeting of a group; times in UTC milliseconds. */
export interface GroupEventsTable {
  id: string
  conversation_id: string
  created_by: string | null
  title: string
  description: string | null
  location: string | null
  start_time: Millis
  end_time: Millis | null
  is_online: Flag
  meeting_link: string | null
  max_attendees: number | null
  created_at: Millis
  updated_at: Millis
}

/** An RSVP answer. */
export type AttendanceStatus = "going" | "maybe" | "not_going"

/** `group_event_attendees`: one RSVP per (event, user). */
export interface GroupEventAttendeesTable {
  event_id: string
  user_id: string
  status: AttendanceStatus
  created_at: Millis
  updated_at: Millis
}

/** Where a join request stands. */
export type JoinRequestStatus = "pending" | "approved" | "rejected"

/** `group_join_requests`: who asked to join a group that requires admin approval (one row per user). */
export interface GroupJoinRequestsTable {
  id: string
  conversation_id: string
  user_id: string
  status: JoinRequestStatus
  invited_by: string | null
  decided_by: string | null
  decided_at: Millis | null
  created_at: Millis
  updated_at: Millis
}
