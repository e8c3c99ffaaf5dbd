import { type Kysely, sql } from "kysely"
import { isPostgres } from "./lib.ts"

/**
 * SQLite search: messages are indexed after their send, not inside it (src/messages/search.indexer.ts). The
 * insert and update triggers of 0003 go; the indexer follows the change feed (`changes`: every created, edited
 * and deleted message, in commit order) from the position kept in `search_index_progress`, in transactions of
 * FTS5 writes only (inside the send batch, every later write statement made FTS5 flush each message as
 * segments of its own: about a quarter of the write CPU at live chat's batch sizes). The delete trigger stays: a
 * conversation deleted with its messages leaves no feed row per message. Everything up to here was indexed
 * by the triggers, so the indexer starts at the feed's end. Postgres: nothing to do (a generated column).
 */
export async function up(db: Kysely<any>): Promise<void> {
  if (isPostgres(db)) return
  await sql`drop trigger messages_fts_insert`.execute(db)
  await sql`drop trigger messages_fts_update`.execute(db)
  await sql`create table search_index_progress (id integer primary key check (id = 0), pos integer not null)`.execute(
    db,
  )
  await sql`insert into search_index_progress (id, pos) select 0, coalesce(max(pos), 0) from changes`.execute(
    db,
  )
}

export async function down(db: Kysely<any>): Promise<void> {
  if (isPostgres(db)) return
  // Changes not indexed yet are indexed by the rebuild of the whole table below.
  await sql`drop table search_index_progress`.execute(db)
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
  await sql`insert into messages_fts(messages_fts) values ('delete-all')`.execute(db)
  await sql`insert into messages_fts(rowid, body, conv)
    select rid, content, 'c' || replace(conversation_id, '-', '') from messages
    where message_type = 'TEXT' and deleted_at is null order by rid`.execute(db)
}
