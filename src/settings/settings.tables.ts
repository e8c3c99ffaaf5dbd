import type { Flag, Millis } from "../db/schema.ts"

/** `user_blocks`: one-way blocks (blocker no longer hears from blocked). */
export interface UserBlocksTable {
  blocker_id: string
  blocked_id: string
  created_at: Millis
}

/** `user_settings`: privacy and notification switches, one row per user (absent row: every switch on). */
export interface UserSettingsTable {
  user_id: string
  show_online_status: Flag
  show_last_seen: Flag
  show_profile_photo: Flag
  show_read_receipts: Flag
  notifications_enabled: Flag
  notification_preview: Flag
  notification_sound: Flag
  notification_vibration: Flag
  message_notifications: Flag
  group_notifications: Flag
  updated_at: Millis
}
