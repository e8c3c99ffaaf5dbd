import { type Kysely, sql } from "kysely"
import { isPostgres } from "./lib.ts"

/**
 * SQLite search moves out of the database file into a search database of its own, written by a worker thread
 * (src/messages/search.indexer.ts): FTS5's merges, on the event loop or under the write lock every send
 * takes, stalled live delivery. The index here, its delete trigger and its position go; the worker builds the
 * new index from the messages on the server's first start (a search meanwhile waits up to a few seconds,
 * then answers from what is indexed). Postgres: nothing to do.
 */
export async function up(db: Kysely<any>): Promise<void> {
  if (isPostgres(db)) return
  await sql`drop trigger messages_fts_delete`.execute(db)
  await sql`drop table messages_fts`.execute(db)
  await sql`drop table search_index_progress`.execute(db)
}

/** Back to the index of 0008 in the database file, rebuilt from the messages. */
export async function down(db: Kysely<any>): Promise<void> {
  if (isPostgres(db)) return
  await sql`create virtual table messages_fts using fts5(body, conv, content='', contentless_delete=1, prefix='2 3 4', tokenize='unicode61 remove_diacritics 2')`.execute(
    db,
  )
  await sql`insert into messages_fts(rowid, body, conv)
    select rid, content, 'c' || replace(conversation_id, '-', '') from messages
    where message_type = 'TEXT' and deleted_at is null order by rid`.execute(db)
  await sql`create trigger messages_fts_delete after delete on messages begin
        delete from messages_fts where rowid = old.rid;
      end`.execute(db)
  await sql`create table search_index_progress (id integer primary key check (id = 0), pos integer not null)`.execute(
    db,
  )
  await sql`insert into search_index_progress (id, pos) select 0, coalesce(max(pos), 0) from changes`.execute(
    db,
  )
}
