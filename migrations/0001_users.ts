import { type Kysely, sql } from "kysely"
import { bigintType, flagType } from "./lib.ts"

/** Accounts, their sessions (one per logged-in device), one-time codes, verification requests, blocks and settings. */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable("users")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("phone_number", "text", (c) => c.notNull().unique())
    .addColumn("email", "text")
    .addColumn("password_hash", "text")
    .addColumn("display_name", "text")
    .addColumn("avatar_url", "text")
    .addColumn("bio", "text")
    .addColumn("role", "text", (c) => c.notNull().defaultTo("REGULAR"))
    .addColumn("is_verified", flagType(db), (c) => c.notNull().defaultTo(sql`false`))
    .addColumn("social_links", "text", (c) => c.notNull().defaultTo("{}"))
    .addColumn("last_seen", bigintType)
    .addColumn("created_at", bigintType, (c) => c.notNull())
    .addColumn("updated_at", bigintType, (c) => c.notNull())
    .execute()
  await db.schema.createIndex("users_email_unique").unique().on("users").column("email").execute()

  await db.schema
    .createTable("user_sessions")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("user_id", "text", (c) => c.notNull().references("users.id").onDelete("cascade"))
    .addColumn("refresh_token_hash", "text", (c) => c.notNull().unique())
    .addColumn("refresh_salt", "text", (c) => c.notNull())
    .addColumn("device_name", "text")
    .addColumn("platform", "text")
    .addColumn("ip", "text")
    .addColumn("created_at", bigintType, (c) => c.notNull())
    .addColumn("last_used_at", bigintType, (c) => c.notNull())
    .addColumn("expires_at", bigintType, (c) => c.notNull())
    .addColumn("ended_at", bigintType)
    .execute()
  await db.schema
    .createIndex("user_sessions_user")
    .on("user_sessions")
    .columns(["user_id", "ended_at"])
    .execute()

  // One live code per phone and purpose: a new code replaces the row (no user row needed: sign-up codes
  // are sent before the account exists).
  await db.schema
    .createTable("otp_codes")
    .addColumn("phone_number", "text", (c) => c.notNull())
    .addColumn("purpose", "text", (c) => c.notNull())
    .addColumn("code_hash", "text", (c) => c.notNull())
    .addColumn("attempts", "integer", (c) => c.notNull().defaultTo(0))
    .addColumn("created_at", bigintType, (c) => c.notNull())
    .addColumn("expires_at", bigintType, (c) => c.notNull())
    .addColumn("consumed_at", bigintType)
    .addPrimaryKeyConstraint("otp_codes_pk", ["phone_number", "purpose"])
    .execute()

  await db.schema
    .createTable("verification_requests")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("user_id", "text", (c) => c.notNull().references("users.id").onDelete("cascade"))
    .addColumn("full_name", "text", (c) => c.notNull())
    .addColumn("reason", "text", (c) => c.notNull())
    .addColumn("social_proof", "text")
    .addColumn("status", "text", (c) => c.notNull())
    .addColumn("reviewed_by", "text", (c) => c.references("users.id").onDelete("set null"))
    .addColumn("reviewed_at", bigintType)
    .addColumn("rejection_reason", "text")
    .addColumn("created_at", bigintType, (c) => c.notNull())
    .execute()
  await db.schema
    .createIndex("verification_requests_user")
    .on("verification_requests")
    .columns(["user_id", "created_at"])
    .execute()
  await db.schema
    .createIndex("verification_requests_status")
    .on("verification_requests")
    .columns(["status", "created_at"])
    .execute()

  await db.schema
    .createTable("user_blocks")
    .addColumn("blocker_id", "text", (c) => c.notNull().references("users.id").onDelete("cascade"))
    .addColumn("blocked_id", "text", (c) => c.notNull().references("users.id").onDelete("cascade"))
    .addColumn("created_at", bigintType, (c) => c.notNull())
    .addPrimaryKeyConstraint("user_blocks_pk", ["blocker_id", "blocked_id"])
    .execute()
  // "Who blocked me" (the reverse direction of the primary key).
  await db.schema.createIndex("user_blocks_blocked").on("user_blocks").columns(["blocked_id"]).execute()

  const on = (c: any) => c.notNull().defaultTo(sql`true`)
  await db.schema
    .createTable("user_settings")
    .addColumn("user_id", "text", (c) => c.primaryKey().references("users.id").onDelete("cascade"))
    .addColumn("show_online_status", flagType(db), on)
    .addColumn("show_last_seen", flagType(db), on)
    .addColumn("show_profile_photo", flagType(db), on)
    .addColumn("show_read_receipts", flagType(db), on)
    .addColumn("notifications_enabled", flagType(db), on)
    .addColumn("notification_preview", flagType(db), on)
    .addColumn("notification_sound", flagType(db), on)
    .addColumn("notification_vibration", flagType(db), on)
    .addColumn("message_notifications", flagType(db), on)
    .addColumn("group_notifications", flagType(db), on)
    .addColumn("updated_at", bigintType, (c) => c.notNull())
    .execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable("user_settings").execute()
  await db.schema.dropTable("user_blocks").execute()
  await db.schema.dropTable("verification_requests").execute()
  await db.schema.dropTable("otp_codes").execute()
  await db.schema.dropTable("user_sessions").execute()
  await db.schema.dropTable("users").execute()
}
