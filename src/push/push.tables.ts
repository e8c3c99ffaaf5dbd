import type { Millis } from "../db/schema.ts"

export type DevicePlatform = "ios" | "android"

/** `device_tokens`: one row per device (the token is the key), owned by the session that registered it. */
export interface DeviceTokensTable {
  token: string
  user_id: string
  session_id: string
  platform: DevicePlatform
  created_at: Millis
  updated_at: Millis
}
