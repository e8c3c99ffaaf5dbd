import { type Kysely, sql } from "kysely"
import { isPostgres } from "./lib.ts"
import { down as down0009, up as up0009 } from "./0009_search_newest_first.ts"

/**
 * Postgres search by time windows (SQLite: nothing to do). Migration 0009's walk read the caller's conversations
 * one at a time, a cursor and a heap row per message: a word in 3 % of messages went to GIN (every match of the
 * word in the database into a bitmap, ~30,000 on 1M messages: 35–50 ms), and a word in 20 % cost ~60 µs per
 * conversation visited (101 of the busiest sample user's 172 for 67 matches). Instead:
 *
 * - `messages_conversation_time` on (conversation_id, created_at, id) now carries `seq` and `tsv` (INCLUDE): a
 *   window of a conversation's messages is tested against the words from the index alone (an index-only scan:
 *   no heap page per message; the messages of one conversation lie one per heap page).
 * - `urge_search_messages(...)` (same signature and result) reads the caller's conversations over a window of
 *   time, newest first, in one statement (`conversation_id = any(...)`: one index descent per conversation):
 *   the window's length is what should hold `want` matches (the words' frequency by Postgres' statistics, the
 *   conversations' messages per millisecond since their creation) × 1.5, doubled until `want` matches are
 *   found or every message was read. Every match inside a window is found, so the newest `want` are exact.
 *   GIN answers instead when the windows would read more than three messages per match of the words in the
 *   whole database (rare words: GIN collects those matches, then reads a heap row per match in these
 *   conversations), or more than `budget` messages.
 *
 * Both return at most `want` (id, created_at) below the cursor (created_at, id), newest first. Messages at or
 * below the member's clear point are skipped by the windows only; hidden ones are not: the caller filters both.
 */
export async function up(db: Kysely<any>): Promise<void> {
  if (!isPostgres(db)) return
  await sql`drop index messages_conversation_time`.execute(db)
  await sql`create index messages_conversation_time on messages (conversation_id, created_at, id) include (seq, tsv)`.execute(
    db,
  )
  await sql.raw(searchFunction).execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  if (!isPostgres(db)) return
  // 0009's index and function, as 0009 made them.
  await down0009(db)
  await up0009(db)
}

const searchFunction = `
create or replace function urge_search_messages(
  p_user text, p_conversation text, p_query tsquery, p_before_at bigint, p_before_id text, p_want int, p_budget int)
returns table (id text, created_at bigint)
language plpgsql as $fn$
declare
  convs text[];
  cleared jsonb;
  messages_total float8;
  oldest bigint;
  newest bigint;
  plan json;
  matches float8;
  total float8;
  expected float8;
  rate float8;
  span float8;
  hi_at bigint := p_before_at;
  hi_id text := p_before_id;
  lo bigint;
  budget float8 := p_budget;
  found_at bigint[] := '{}';
  found_id text[] := '{}';
begin
  -- The conversations searched (any message after the clear point), the clear points that are set (a jsonb
  -- object: a key lookup per message, where a join to the array would be planned per call), how many messages
  -- they hold, since when.
  select array_agg(cm.conversation_id),
         coalesce(jsonb_object_agg(cm.conversation_id, cm.cleared_seq) filter (where cm.cleared_seq > 0), '{}'),
         sum(cv.last_seq - cm.cleared_seq), min(cv.created_at), max(cv.last_message_at)
    into convs, cleared, messages_total, oldest, newest
    from conversation_members cm join conversations cv on cv.id = cm.conversation_id
    where cm.user_id = p_user and (p_conversation is null or cm.conversation_id = p_conversation)
      and cv.last_seq > cm.cleared_seq;
  if convs is null then return; end if;
  -- How many messages the words match, by Postgres' statistics (the planner's estimate).
  execute format('explain (format json) select 1 from messages where tsv @@ %L::tsquery', p_query) into plan;
  matches := greatest((plan->0->'Plan'->>'Plan Rows')::float8, 1);
  select greatest(reltuples, 1) into total from pg_class where oid = 'messages'::regclass;
  -- Messages to read, newest first, for want matches, and how many these conversations receive per ms.
  expected := p_want * total / matches;
  rate := messages_total / greatest(coalesce(newest, 0) - oldest, 1)::float8;
  -- Windows when they read fewer messages than the budget, and fewer than three times the words' matches
  -- anywhere: GIN collects those matches and reads a heap row for each one of these conversations holds.
  if least(1.5 * expected, messages_total) <= least(budget, 3 * matches) then
    span := 1.5 * expected / rate;
    loop
      lo := (least(hi_at, coalesce(newest, hi_at)) - span)::bigint;
      -- The last window: everything older (a message is never older than its conversation, but no bound is
      -- trusted to be exact).
      if lo <= oldest then lo := -9223372036854775808; end if;
      budget := budget - span * rate;
      select coalesce(array_agg(u.a order by u.a desc, u.i desc), '{}'),
             coalesce(array_agg(u.i order by u.a desc, u.i desc), '{}')
        into found_at, found_id
        from (
          select v.a, v.i from unnest(found_at, found_id) as v(a, i)
          union all
          select m.created_at, m.id from messages m
            where m.conversation_id = any(convs) and m.created_at >= lo and (m.created_at, m.id) < (hi_at, hi_id)
              and m.tsv @@ p_query and m.seq > coalesce((cleared ->> m.conversation_id)::bigint, 0)
          order by 1 desc, 2 desc limit p_want) u;
      if cardinality(found_at) >= p_want or lo = -9223372036854775808 then
        return query select u.i, u.a from unnest(found_at, found_id) as u(a, i) order by u.a desc, u.i desc;
        return;
      end if;
      exit when budget <= 0;
      -- The next window: older than this one.
      hi_at := lo;
      hi_id := '';
      span := span * 2;
    end loop;
  end if;
  -- GIN. Words with few matches anywhere (fewer than a third of these conversations' messages): every match,
  -- then a heap row each to keep those of these conversations. Otherwise Postgres intersects GIN's matches
  -- with these conversations' messages (messages_conversation_seq); \`deleted_at is null\` changes no result
  -- (a deleted message's tsv is empty) but keeps it from reading every message of these conversations
  -- through messages_conversation_time (index-only) instead.
  if p_conversation is not null then
    -- One conversation: GIN intersects its key with the words' (btree_gin).
    return query execute
      'select m.id, m.created_at from messages m where m.tsv @@ $1 and m.conversation_id = $2
         and m.deleted_at is null and (m.created_at, m.id) < ($3, $4) order by m.created_at desc, m.id desc limit $5'
      using p_query, p_conversation, p_before_at, p_before_id, p_want;
  elsif matches < messages_total / 3 then
    return query execute
      'with hits as materialized (
         select m.id, m.created_at, m.conversation_id from messages m
         where m.tsv @@ $1 and (m.created_at, m.id) < ($3, $4))
       select h.id, h.created_at from hits h where h.conversation_id = any($2)
       order by h.created_at desc, h.id desc limit $5'
      using p_query, convs, p_before_at, p_before_id, p_want;
  else
    return query execute
      'select m.id, m.created_at from messages m where m.tsv @@ $1 and m.conversation_id = any($2)
         and m.deleted_at is null and (m.created_at, m.id) < ($3, $4) order by m.created_at desc, m.id desc limit $5'
      using p_query, convs, p_before_at, p_before_id, p_want;
  end if;
end
$fn$`
