import { type Kysely, sql } from "kysely"
import { isPostgres } from "./lib.ts"

/**
 * Postgres search, newest first (SQLite: nothing to do). GIN cannot return matches in time order, and the word
 * being typed is a prefix term whose every match GIN collects into a bitmap before anything is sorted: a word in
 * one message in five cost ~100 ms of Postgres CPU per search on 1M messages. Instead:
 *
 * - `messages_conversation_time` on (conversation_id, created_at, id): each conversation's messages in the
 *   search's order (newest first, ties by id), so a walk can stop early.
 * - `urge_search_messages(...)`: walks the caller's conversations, most recent activity first, each one newest
 *   first, testing `tsv @@ query` on every message, and stops once the `want` newest matches are certain: a
 *   conversation whose last message (`conversations.last_message_at`) is older than the want-th match so far
 *   cannot hold a newer one. When the words are rare by Postgres' own statistics (the walk would read more than
 *   `budget` messages to find `want` matches), or the walk reads `budget` messages anyway, the GIN index answers
 *   instead (all matches of the caller's conversations, sorted: cheap when they are few).
 *
 * Both return at most `want` (id, created_at) below the cursor (created_at, id), newest first. Messages at or
 * below the member's clear point are skipped by the walk only; hidden ones are not: the caller filters both.
 */
export async function up(db: Kysely<any>): Promise<void> {
  if (!isPostgres(db)) return
  await sql`create index messages_conversation_time on messages (conversation_id, created_at, id)`.execute(db)
  await sql.raw(searchFunction).execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  if (!isPostgres(db)) return
  await sql`drop function if exists urge_search_messages(text, text, tsquery, bigint, text, integer, integer)`.execute(
    db,
  )
  await sql`drop index if exists messages_conversation_time`.execute(db)
}

const searchFunction = `
create function urge_search_messages(
  p_user text, p_conversation text, p_query tsquery, p_before_at bigint, p_before_id text, p_want int, p_budget int)
returns table (id text, created_at bigint)
language plpgsql as $fn$
declare
  c record;
  r record;
  walk refcursor;
  plan json;
  matches float8;
  total float8;
  found_at bigint[] := '{}';
  found_id text[] := '{}';
  enough boolean := false;
  theta_at bigint;
  theta_id text;
  visited int := 0;
  hits int;
  ptr int;
  prior int;
begin
  -- How many messages the words match, by Postgres' statistics (the planner's estimate): rare words go to GIN.
  execute format('explain (format json) select 1 from messages where tsv @@ %L::tsquery', p_query) into plan;
  matches := (plan->0->'Plan'->>'Plan Rows')::float8;
  select greatest(reltuples, 1) into total from pg_class where oid = 'messages'::regclass;
  if p_want * total / greatest(matches, 1) > p_budget then
    visited := p_budget;
  end if;
  if visited < p_budget then
    for c in
      select cm.conversation_id as cid, cm.cleared_seq, cv.last_message_at
      from conversation_members cm join conversations cv on cv.id = cm.conversation_id
      where cm.user_id = p_user and (p_conversation is null or cm.conversation_id = p_conversation)
        and cv.last_seq > cm.cleared_seq
      order by cv.last_message_at desc nulls first
    loop
      exit when visited >= p_budget;
      -- Conversations come by their last message, newest first: none of the rest can hold a newer match.
      exit when enough and c.last_message_at < theta_at;
      hits := 0;
      ptr := 0;
      prior := coalesce(cardinality(found_at), 0);
      -- A cursor is planned for its first rows (cursor_tuple_fraction): the index walk newest first, never a
      -- sort of the whole conversation.
      open walk for
        select m.id, m.created_at, m.tsv @@ p_query as hit from messages m
        where m.conversation_id = c.cid and (m.created_at, m.id) < (p_before_at, p_before_id) and m.seq > c.cleared_seq
        order by m.created_at desc, m.id desc;
      loop
        fetch walk into r;
        exit when not found;
        -- Matches found so far that are newer than this message: with want of them, it and the older ones of
        -- this conversation are out.
        while ptr < prior and (found_at[ptr + 1], found_id[ptr + 1]) > (r.created_at, r.id) loop
          ptr := ptr + 1;
        end loop;
        exit when ptr + hits >= p_want;
        visited := visited + 1;
        exit when visited >= p_budget;
        if r.hit then
          found_at := found_at || r.created_at;
          found_id := found_id || r.id;
          hits := hits + 1;
        end if;
      end loop;
      close walk;
      -- Kept sorted, newest first, at most want.
      if hits > 0 then
        select array_agg(u.a order by u.a desc, u.i desc), array_agg(u.i order by u.a desc, u.i desc)
          into found_at, found_id
          from (select v.a, v.i from unnest(found_at, found_id) as v(a, i) order by v.a desc, v.i desc limit p_want) u;
        if cardinality(found_at) >= p_want then
          enough := true;
          theta_at := found_at[p_want];
          theta_id := found_id[p_want];
        end if;
      end if;
    end loop;
  end if;
  if visited >= p_budget then
    return query execute
      'select m.id, m.created_at from messages m where m.tsv @@ $1 and m.conversation_id = any($2)
         and (m.created_at, m.id) < ($3, $4) order by m.created_at desc, m.id desc limit $5'
      using p_query,
        array(select cm.conversation_id from conversation_members cm
              where cm.user_id = p_user and (p_conversation is null or cm.conversation_id = p_conversation)),
        p_before_at, p_before_id, p_want;
    return;
  end if;
  return query select u.i, u.a from unnest(found_at, found_id) as u(a, i) order by u.a desc, u.i desc limit p_want;
end
$fn$`
