import type { Kysely } from "kysely"
import { bigintType } from "./lib.ts"

/**
 * Push: the device tokens the app registers (FCM or APNs). A token names one device, so it is the key: when
 * another user registers it, the device changed hands and the row moves to them. The token belongs to the
 * session that registered it: pushes go only through tokens of live sessions, and a session's end deletes
 * them (a signed-out phone must not show the previous user's messages). See docs/architecture.md "Push".
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable("device_tokens")
    .addColumn("token", "text", (c) => c.primaryKey())
    .addColumn("user_id", "text", (c) => c.notNull().references("users.id").onDelete("cascade"))
    .addColumn("session_id", "text", (c) => c.notNull().references("user_sessions.id").onDelete("cascade"))
    // "ios" or "android" (the app's Platform.OS).
    .addColumn("platform", "text", (c) => c.notNull())
    .addColumn("created_at", bigintType, (c) => c.notNull())
    .addColumn("updated_at", bigintType, (c) => c.notNull())
    .execute()
  await db.schema.createIndex("device_tokens_user").on("device_tokens").column("user_id").execute()
  await db.schema.createIndex("device_tokens_session").on("device_tokens").column("session_id").execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable("device_tokens").execute()
}
