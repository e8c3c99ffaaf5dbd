import { type Kysely, sql } from "kysely"
import { bigintType, flagType, isPostgres } from "./lib.ts"

/**
 * Messaging: conversations, per-user membership state (watermarks and flags), messages with a
 * per-conversation `seq`, per-user hides and stars, the change feed behind `/api/sync`, and full-text search
 * (FTS5 on SQLite, tsvector + GIN on Postgres). See docs/architecture.md "Messaging".
 */
export async function up(db: Kysely<any>): Promise<void> {
  const pg = isPostgres(db)

  await db.schema
    .createTable("conversations")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("type", "text", (c) => c.notNull())
    .addColumn("name", "text")
    .addColumn("avatar_url", "text")
    .addColumn("description", "text")
    .addColumn("created_by", "text", (c) => c.references("users.id").onDelete("set null"))
    // DIRECT only: the two user ids, sorted and joined, so "the" direct conversation of a pair is unique.
    .addColumn("direct_key", "text", (c) => c.unique())
    .addColumn("last_seq", bigintType, (c) => c.notNull().defaultTo(0))
    // Newest message not deleted for everyone: the conversation list reads it without scanning messages.
    .addColumn("last_message_id", "text")
    .addColumn("last_message_at", bigintType)
    .addColumn("created_at", bigintType, (c) => c.notNull())
    .addColumn("updated_at", bigintType, (c) => c.notNull())
    .execute()

  await db.schema
    .createTable("conversation_members")
    .addColumn("conversation_id", "text", (c) =>
      c.notNull().references("conversations.id").onDelete("cascade"),
    )
    .addColumn("user_id", "text", (c) => c.notNull().references("users.id").onDelete("cascade"))
    .addColumn("role", "text", (c) => c.notNull().defaultTo("MEMBER"))
    .addColumn("joined_at", bigintType, (c) => c.notNull())
    .addColumn("last_read_seq", bigintType, (c) => c.notNull().defaultTo(0))
    .addColumn("last_delivered_seq", bigintType, (c) => c.notNull().defaultTo(0))
    // Messages with seq <= cleared_seq are gone for this member (clear history).
    .addColumn("cleared_seq", bigintType, (c) => c.notNull().defaultTo(0))
    .addColumn("muted_until", bigintType)
    .addColumn("archived", flagType(db), (c) => c.notNull().defaultTo(sql`false`))
    .addColumn("favourite", flagType(db), (c) => c.notNull().defaultTo(sql`false`))
    .addColumn("pinned_at", bigintType)
    // DIRECT "delete chat": out of the list until a message newer than cleared_seq arrives.
    .addColumn("hidden", flagType(db), (c) => c.notNull().defaultTo(sql`false`))
    .addColumn("updated_at", bigintType, (c) => c.notNull())
    .addPrimaryKeyConstraint("conversation_members_pk", ["conversation_id", "user_id"])
    .execute()
  await db.schema
    .createIndex("conversation_members_user")
    .on("conversation_members")
    .columns(["user_id", "conversation_id"])
    .execute()

  let messages = db.schema.createTable("messages")
  // SQLite: an INTEGER PRIMARY KEY keeps the rowid stable across VACUUM, so the FTS5 index can point at it.
  messages = pg
    ? messages.addColumn("id", "text", (c) => c.primaryKey())
    : messages
        .addColumn("rid", "integer", (c) => c.primaryKey())
        .addColumn("id", "text", (c) => c.notNull().unique())
  await messages
    .addColumn("conversation_id", "text", (c) =>
      c.notNull().references("conversations.id").onDelete("cascade"),
    )
    .addColumn("seq", bigintType, (c) => c.notNull())
    .addColumn("sender_id", "text", (c) => c.references("users.id").onDelete("set null"))
    .addColumn("client_message_id", "text")
    .addColumn("content", "text", (c) => c.notNull().defaultTo(""))
    .addColumn("message_type", "text", (c) => c.notNull().defaultTo("TEXT"))
    .addColumn("media_url", "text")
    .addColumn("thumbnail_url", "text")
    .addColumn("audio_duration", "integer")
    // Not a foreign key: validated to be in the same conversation when sent, kept when the target goes.
    .addColumn("reply_to_id", "text")
    .addColumn("is_encrypted", flagType(db), (c) => c.notNull().defaultTo(sql`false`))
    .addColumn("is_forwarded", flagType(db), (c) => c.notNull().defaultTo(sql`false`))
    .addColumn("edited_at", bigintType)
    .addColumn("deleted_at", bigintType)
    .addColumn("created_at", bigintType, (c) => c.notNull())
    .addColumn("updated_at", bigintType, (c) => c.notNull())
    .addUniqueConstraint("messages_conversation_seq", ["conversation_id", "seq"])
    .execute()
  // Idempotent sends: one message per (sender, client id), forever (NULL client ids never collide).
  await db.schema
    .createIndex("messages_sender_client_id")
    .unique()
    .on("messages")
    .columns(["sender_id", "client_message_id"])
    .execute()

  await db.schema
    .createTable("message_hides")
    .addColumn("user_id", "text", (c) => c.notNull().references("users.id").onDelete("cascade"))
    .addColumn("message_id", "text", (c) => c.notNull().references("messages.id").onDelete("cascade"))
    .addColumn("conversation_id", "text", (c) => c.notNull())
    .addColumn("created_at", bigintType, (c) => c.notNull())
    .addPrimaryKeyConstraint("message_hides_pk", ["user_id", "message_id"])
    .execute()

  await db.schema
    .createTable("message_stars")
    .addColumn("user_id", "text", (c) => c.notNull().references("users.id").onDelete("cascade"))
    .addColumn("message_id", "text", (c) => c.notNull().references("messages.id").onDelete("cascade"))
    .addColumn("conversation_id", "text", (c) => c.notNull())
    .addColumn("created_at", bigintType, (c) => c.notNull())
    .addPrimaryKeyConstraint("message_stars_pk", ["user_id", "message_id"])
    .execute()
  await db.schema
    .createIndex("message_stars_user_time")
    .on("message_stars")
    .columns(["user_id", "created_at"])
    .execute()

  // The change feed: one row per durable change, `pos` totally ordered in commit order (see the service).
  // Rows with user_id NULL concern every member of conversation_id; rows with user_id concern that user only.
  let changes = db.schema.createTable("changes")
  changes = pg
    ? changes.addColumn("pos", "bigserial", (c) => c.primaryKey())
    : changes.addColumn("pos", "integer", (c) => c.primaryKey())
  await changes
    .addColumn("conversation_id", "text")
    .addColumn("user_id", "text")
    .addColumn("kind", "text", (c) => c.notNull())
    .addColumn("message_id", "text")
    .addColumn("data", "text")
    .addColumn("created_at", bigintType, (c) => c.notNull())
    .execute()
  await db.schema
    .createIndex("changes_conversation")
    .on("changes")
    .columns(["conversation_id", "pos"])
    .execute()
  await db.schema.createIndex("changes_user").on("changes").columns(["user_id", "pos"]).execute()

  if (pg) {
    // Only text messages are searchable; a deleted message has its content wiped, so it leaves the index.
    await sql`alter table messages add column tsv tsvector generated always as
      (to_tsvector('simple', case when message_type = 'TEXT' and deleted_at is null then content else '' end)) stored`.execute(
      db,
    )
    // btree_gin lets one GIN index hold (conversation_id, tsv): in-conversation search is one index scan. It is
    // a trusted extension (a database owner may create it); without it, fall back to GIN(tsv).
    await sql`do $$ begin
      create extension if not exists btree_gin;
    exception when others then
      raise notice 'btree_gin unavailable: %', sqlerrm;
    end $$`.execute(db)
    const { rows } = await sql<{
      ok: boolean
    }>`select exists(select 1 from pg_extension where extname = 'btree_gin') as ok`.execute(db)
    if (rows[0]?.ok)
      await sql`create index messages_search on messages using gin (conversation_id, tsv)`.execute(db)
    else await sql`create index messages_search on messages using gin (tsv)`.execute(db)
  } else {
    // Contentless FTS5 keyed by messages.rid; `conv` is the conversation as one token ("c" + hex), so a search
    // in one conversation, or across the caller's conversations, is answered by the index itself.
    await sql`create virtual table messages_fts using fts5(body, conv, content='', contentless_delete=1, tokenize='unicode61 remove_diacritics 2')`.execute(
      db,
    )
    await sql`create trigger messages_fts_insert after insert on messages
      when new.message_type = 'TEXT' and new.deleted_at is null begin
        insert into messages_fts(rowid, body, conv) values (new.rid, new.content, 'c' || replace(new.conversation_id, '-', ''));
      end`.execute(db)
    await sql`create trigger messages_fts_update after update of content, deleted_at, message_type on messages begin
        delete from messages_fts where rowid = old.rid;
        insert into messages_fts(rowid, body, conv)
          select new.rid, new.content, 'c' || replace(new.conversation_id, '-', '')
          where new.message_type = 'TEXT' and new.deleted_at is null;
      end`.execute(db)
    await sql`create trigger messages_fts_delete after delete on messages begin
        delete from messages_fts where rowid = old.rid;
      end`.execute(db)
  }
}

export async function down(db: Kysely<any>): Promise<void> {
  if (!isPostgres(db)) {
    await sql`drop trigger if exists messages_fts_insert`.execute(db)
    await sql`drop trigger if exists messages_fts_update`.execute(db)
    await sql`drop trigger if exists messages_fts_delete`.execute(db)
    await sql`drop table if exists messages_fts`.execute(db)
  }
  await db.schema.dropTable("changes").execute()
  await db.schema.dropTable("message_stars").execute()
  await db.schema.dropTable("message_hides").execute()
  await db.schema.dropTable("messages").execute()
  await db.schema.dropTable("conversation_members").execute()
  await db.schema.dropTable("conversations").execute()
}
