import { conversationErrors } from "../conversations/conversations.access.ts"
import type { Deps } from "../deps.ts"
import { AppError, forbidden } from "../errors.ts"
import { groupRoles, isAdminRole } from "../groups/groups.roles.ts"
import { feedLockKey } from "../sync/sync.repository.ts"
import type { MessageType } from "./messages.tables.ts"

/** One validated send, as the store writes it. */
export type StoreItem = {
  conversationId: string
  senderId: string
  clientMessageId: string | null
  content: string
  type: MessageType
  mediaUrl: string | null
  thumbnailUrl: string | null
  audioDuration: number | null
  replyToId: string | null
  isEncrypted: boolean
  isForwarded: boolean
}

const storageUnavailable = () =>
  new AppError(
    503,
    "storage.unavailable",
    "The message could not be confirmed on disk; retry with the same client_message_id",
  )

/** What became of one item of a batch. */
export type StoreOutcome =
  /** `recipients`: the members other than the sender, when the batch read them (DIRECT chats). */
  | { kind: "stored"; id: string; seq: number; pos: number; recipients?: string[] }
  /** Its client id was already stored (ownerIndex null) or belongs to an earlier item of this batch. */
  | { kind: "duplicate"; ownerIndex: number | null }
  | { kind: "error"; error: AppError }

/** A sender's public profile, for the messages the batch announces. */
export type SenderProfile = { display_name: string | null; phone_number: string; avatar_url: string | null }

/** The outcome of a batch committed (and, in SQLite "full", fsynced). */
export type StoreResult = { outcomes: StoreOutcome[]; senders: Map<string, SenderProfile> }

/**
 * Who may post, read inside the send transaction for each (conversation, sender): the conversation's type,
 * the sender's role (null: not a member), the group's only_admins_can_post, and blocks either way in a
 * DIRECT chat. Written over `t.c` / `t.u` so SQLite binds them per item and Postgres joins a whole batch.
 */
const accessColumns = `c.type, cm.role, gs.only_admins_can_post as admins_only,
  exists(select 1 from conversation_members o join user_blocks b on b.blocker_id = t.u and b.blocked_id = o.user_id
    where c.type = 'DIRECT' and o.conversation_id = c.id and o.user_id <> t.u) as blocked_them,
  exists(select 1 from conversation_members o join user_blocks b on b.blocker_id = o.user_id and b.blocked_id = t.u
    where c.type = 'DIRECT' and o.conversation_id = c.id and o.user_id <> t.u) as blocked_me,
  (select o.user_id from conversation_members o
    where c.type = 'DIRECT' and o.conversation_id = c.id and o.user_id <> t.u limit 1) as peer`
const accessJoins = `join conversations c on c.id = t.c
  left join conversation_members cm on cm.conversation_id = t.c and cm.user_id = t.u
  left join group_settings gs on gs.conversation_id = t.c`

type AccessRow = {
  type: string
  role: string | null
  admins_only: boolean | number | null
  blocked_them: boolean | number
  blocked_me: boolean | number
  /** The other member of a DIRECT chat. */
  peer: string | null
}

/** 404/403 when the sender is not in the conversation (checked before a duplicate client id is answered). */
function membershipRefusal(row: AccessRow | undefined | null): AppError | null {
  if (!row) return conversationErrors.notFound()
  return row.role === null ? conversationErrors.notMember() : null
}

/** 403 when a member may not post: a block either way in a DIRECT chat (CONTRACT A3), or an admins-only group. */
function postingRefusal(row: AccessRow): AppError | null {
  if (row.blocked_them)
    return forbidden("message.blocked", "You have blocked this user. Unblock them to send messages.")
  if (row.blocked_me) return forbidden("message.blocked", "You cannot send messages to this user.")
  if (row.type === "GROUP" && row.admins_only && !isAdminRole(row.role!))
    return forbidden("group.admins_only", "Only the Founder and Co-founders can send messages in this group")
  return null
}

/**
 * Writes a batch of sends in one transaction and returns once it committed: checks who may post (so a send
 * costs no read before it is queued), resolves client ids already stored or repeated in the batch, assigns
 * seqs, inserts, advances the senders' own read watermarks, appends the feed rows last. Ids are UUIDv7 taken in commit order (so id order follows seq).
 * SQLite runs it as prepared bun:sqlite statements with no await in between (one synchronous transaction
 * while holding Kysely's connection); Postgres as a few set-based statements whatever the batch size.
 */
export function storeSends(deps: Deps, items: StoreItem[], now: number): Promise<StoreResult> {
  const owners: (number | null)[] = items.map(() => null)
  const firstByKey = new Map<string, number>()
  items.forEach((item, index) => {
    if (!item.clientMessageId) return
    const key = `${item.senderId}\n${item.clientMessageId}`
    const first = firstByKey.get(key)
    if (first === undefined) firstByKey.set(key, index)
    else owners[index] = first
  })
  return deps.database.dialect === "sqlite"
    ? storeSqlite(deps, items, owners, now)
    : storePostgres(deps, items, owners, now)
}

async function storeSqlite(
  deps: Deps,
  items: StoreItem[],
  owners: (number | null)[],
  now: number,
): Promise<StoreResult> {
  const s = deps.database.sqlite!
  const wal = deps.database.wal
  // "full": commit without the fsync, then fsync the WAL off the event loop before answering (see wal.ts).
  const syncAfter = deps.config.database.durability === "full" && wal !== undefined
  // Holding Kysely's (single) connection keeps every other query out of this transaction.
  const result = await deps.database.db.connection().execute(async () => {
    const access = s.query<AccessRow, [string, string]>(
      `select ${accessColumns} from (select ?1 as c, ?2 as u) t ${accessJoins}`,
    )
    const stored = s.query<{ id: string }, [string, string]>(
      "select id from messages where sender_id = ? and client_message_id = ?",
    )
    const bump = s.query<{ last_seq: number }, [string, number, string]>(
      "update conversations set last_seq = last_seq + 1, last_message_id = ?1, last_message_at = ?2, updated_at = ?2 where id = ?3 returning last_seq",
    )
    const insert = s.query(
      `insert into messages (id, conversation_id, seq, sender_id, client_message_id, content, message_type, media_url,
        thumbnail_url, audio_duration, reply_to_id, is_encrypted, is_forwarded, created_at, updated_at)
       values (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?14)`,
    )
    const read = s.query(
      `update conversation_members set last_read_seq = ?1, last_delivered_seq = max(last_delivered_seq, ?1), updated_at = ?2
       where conversation_id = ?3 and user_id = ?4 and last_read_seq < ?1`,
    )
    const change = s.query<{ pos: number }, [string, string, number]>(
      "insert into changes (conversation_id, kind, message_id, created_at) values (?, 'message.created', ?, ?) returning pos",
    )
    const profile = s.query<SenderProfile, [string]>(
      "select display_name, phone_number, avatar_url from users where id = ?",
    )
    const outcomes: StoreOutcome[] = []
    const senders = new Map<string, SenderProfile>()
    if (syncAfter) s.exec("PRAGMA synchronous = NORMAL")
    // The access row, read under the same write lock, already proves the conversation and sender exist: the
    // two foreign-key lookups per inserted message would only repeat it (no cascade runs in this transaction).
    s.exec("PRAGMA foreign_keys = OFF")
    s.exec("begin immediate")
    try {
      const created: { index: number; id: string; seq: number; recipients?: string[] }[] = []
      items.forEach((item, index) => {
        if (owners[index] !== null)
          return void (outcomes[index] = { kind: "duplicate", ownerIndex: owners[index]! })
        const row = access.get(item.conversationId, item.senderId)
        const notMember = membershipRefusal(row)
        if (notMember) return void (outcomes[index] = { kind: "error", error: notMember })
        if (item.clientMessageId && stored.get(item.senderId, item.clientMessageId))
          return void (outcomes[index] = { kind: "duplicate", ownerIndex: null })
        const refused = postingRefusal(row!)
        if (refused) return void (outcomes[index] = { kind: "error", error: refused })
        const recipients = row!.peer === null ? undefined : [row!.peer]
        const id = Bun.randomUUIDv7()
        const seq = Number(bump.get(id, now, item.conversationId)!.last_seq)
        insert.run(
          id,
          item.conversationId,
          seq,
          item.senderId,
          item.clientMessageId,
          item.content,
          item.type,
          item.mediaUrl,
          item.thumbnailUrl,
          item.audioDuration,
          item.replyToId,
          item.isEncrypted,
          item.isForwarded,
          now,
        )
        read.run(seq, now, item.conversationId, item.senderId)
        created.push({ index, id, seq, recipients })
        if (!senders.has(item.senderId)) senders.set(item.senderId, profile.get(item.senderId)!)
      })
      // Feed rows last (see appendChanges: the feed's order is commit order).
      for (const c of created) {
        const { pos } = change.get(items[c.index]!.conversationId, c.id, now)!
        outcomes[c.index] = {
          kind: "stored",
          id: c.id,
          seq: c.seq,
          pos: Number(pos),
          recipients: c.recipients,
        }
      }
      s.exec("commit")
    } catch (error) {
      if (s.inTransaction) s.exec("rollback")
      throw error
    } finally {
      s.exec("PRAGMA foreign_keys = ON")
      if (syncAfter) s.exec("PRAGMA synchronous = FULL")
    }
    return { outcomes, senders }
  })
  if (!syncAfter || !result.outcomes.some((o) => o.kind === "stored")) return result
  // The fsync runs on Bun's I/O threads; the next batch commits when it ends (its answers would wait for the
  // fsync after this one anyway, and the sends that arrive meanwhile make one bigger batch: 1:1 at 1,000 msg/s,
  // -14 % server CPU per message, p50 +1 ms, same p99).
  try {
    await wal!.sync()
  } catch (error) {
    // Committed but not known to be on disk: answer an error (a retry with the client id gets the message).
    deps.logger.error("WAL fsync failed", { error: String(error) })
    result.outcomes = result.outcomes.map((o) =>
      o.kind === "stored" ? { kind: "error", error: storageUnavailable() } : o,
    )
  }
  return result
}

/** The admin roles as a SQL list, for the admins-only check of `pgSend` (the same set as `isAdminRole`). */
const adminRolesSql = groupRoles
  .filter(isAdminRole)
  .map((r) => `'${r}'`)
  .join(", ")

/**
 * The whole batch on Postgres as one statement (so one round trip, and atomic by itself: no begin/commit),
 * run as a named prepared statement on a pooled connection. The pg client costs ~113–155 µs of CPU per query
 * on Bun and planning these joins costs Postgres more than running them (the access query alone ~0.8–0.95 ms
 * unprepared, ~0.22–0.3 ms prepared), so the eleven statements a batch took before are folded into data-modifying
 * CTEs; every CTE sees the statement's snapshot, and the row locks taken by `lk` and the updates (read
 * committed: a row changed since then is re-read, EvalPlanQual) see the latest committed row.
 *
 * - `a`: each item (batch duplicates left out by the caller) with its access row and whether its client id is
 *   already stored; `ok` the items that may be stored, by the rules of `membershipRefusal` and `postingRefusal`.
 * - `lk`: the conversations' rows locked in id order (two instances batching the same conversations cannot
 *   deadlock); `b` bumps `last_seq` by each conversation's count, only on rows `lk` locked (so after it).
 * - `ins` the messages, seqs in item order after each conversation's old `last_seq`; `rd` the senders' read
 *   watermarks.
 * - `fl`: the feed's ordering lock, taken once `ins` and `rd` are done (its counts read them to the end); `fd`
 *   the feed rows, which wait for it, so they are the statement's last writes (see appendChanges: the feed's
 *   order is commit order). A conversation deleted since `a` read it has no `b` row: its items are not stored.
 *
 * One row per item whose conversation exists: its access row, `stored`, and if it was stored its seq, feed
 * position and the sender's profile.
 */
const pgSend = `with a as materialized (
    select t.*, ${accessColumns},
      t.k is not null and exists(select 1 from messages m where m.sender_id = t.u and m.client_message_id = t.k) as stored
    from json_to_recordset($1::json) as t(ord integer, c text, u text, k text, id text, content text, mtype text,
      media text, thumb text, audio integer, reply text, enc boolean, fwd boolean)
    ${accessJoins}),
  ok as (select * from a where role is not null and not stored and not blocked_them and not blocked_me
    and not (type = 'GROUP' and coalesce(admins_only, false) and role not in (${adminRolesSql}))),
  n as (select c, count(*) as n, (array_agg(id order by ord desc))[1] as last_id from ok group by c),
  lk as materialized (select id from conversations where id in (select c from n) order by id for update),
  b as (update conversations c set last_seq = c.last_seq + n.n, last_message_id = n.last_id, last_message_at = $2,
      updated_at = $2
    from n where c.id = n.c and c.id in (select id from lk) returning c.id, c.last_seq - n.n as base),
  ins as (insert into messages (id, conversation_id, seq, sender_id, client_message_id, content, message_type,
      media_url, thumbnail_url, audio_duration, reply_to_id, is_encrypted, is_forwarded, created_at, updated_at)
    select ok.id, ok.c, b.base + row_number() over (partition by ok.c order by ok.ord), ok.u, ok.k, ok.content,
      ok.mtype, ok.media, ok.thumb, ok.audio, ok.reply, ok.enc, ok.fwd, $2, $2
    from ok join b on b.id = ok.c
    returning id, conversation_id, seq, sender_id),
  rd as (update conversation_members m set last_read_seq = t.seq,
      last_delivered_seq = greatest(m.last_delivered_seq, t.seq), updated_at = $2
    from (select conversation_id as c, sender_id as u, max(seq) as seq from ins group by 1, 2) t
    where m.conversation_id = t.c and m.user_id = t.u and m.last_read_seq < t.seq
    returning 1),
  fl as materialized (select pg_advisory_xact_lock($3) from (select count(*) as n from ins) i,
    (select count(*) from rd) r where i.n > 0),
  fd as (insert into changes (conversation_id, kind, message_id, created_at)
    select ins.conversation_id, 'message.created', ins.id, $2 from ins join ok on ok.id = ins.id, fl order by ok.ord
    returning pos, message_id)
  select a.ord, a.type, a.role, a.admins_only, a.blocked_them, a.blocked_me, a.peer, a.stored, ins.seq, fd.pos,
    u.display_name, u.phone_number, u.avatar_url
  from a left join ins on ins.id = a.id left join fd on fd.message_id = a.id left join users u on u.id = ins.sender_id`

type PgSendRow = AccessRow & {
  ord: number
  stored: boolean
  seq: string | null
  pos: string | null
  display_name: string | null
  phone_number: string | null
  avatar_url: string | null
}

async function storePostgres(
  deps: Deps,
  items: StoreItem[],
  owners: (number | null)[],
  now: number,
): Promise<StoreResult> {
  const outcomes: StoreOutcome[] = new Array(items.length)
  const batch: number[] = []
  items.forEach((_, index) => {
    if (owners[index] !== null) outcomes[index] = { kind: "duplicate", ownerIndex: owners[index]! }
    else batch.push(index)
  })
  // The items as one JSON parameter: pg serializes thirteen array parameters in JS (~0.9 ms of client CPU for
  // a batch of 64, against ~0.1 ms for this JSON; measured on Bun), JSON.stringify is native. Lone surrogates
  // become U+FFFD, as pg's UTF-8 encoding of a text parameter does (Postgres refuses them in JSON).
  const text = (s: string | null) => (s === null || s.isWellFormed() ? s : s.toWellFormed())
  // Ids in item order (UUIDv7: id order follows seq); one per item, used only if it is stored.
  const ids: string[] = []
  const rowsIn = batch.map((index) => {
    const i = items[index]!
    const id = Bun.randomUUIDv7()
    ids.push(id)
    return {
      ord: index,
      c: text(i.conversationId),
      u: i.senderId,
      k: text(i.clientMessageId),
      id,
      content: text(i.content),
      mtype: i.type,
      media: text(i.mediaUrl),
      thumb: text(i.thumbnailUrl),
      audio: i.audioDuration,
      reply: text(i.replyToId),
      enc: i.isEncrypted,
      fwd: i.isForwarded,
    }
  })
  const client = await deps.database.pool!.connect()
  let rows: PgSendRow[]
  try {
    rows = (
      await client.query<PgSendRow>({
        name: "send.batch",
        text: pgSend,
        values: [JSON.stringify(rowsIn), now, feedLockKey],
      })
    ).rows
  } finally {
    // One statement, so no transaction is left open: a failed one was rolled back by Postgres, and a broken
    // connection is not taken back by the pool.
    client.release()
  }
  const rowOf = new Map<number, PgSendRow>()
  for (const r of rows) rowOf.set(r.ord, r)
  const senders = new Map<string, SenderProfile>()
  const created: { index: number; id: string; seq: number; pos: number; peer: string | null }[] = []
  batch.forEach((index, k) => {
    const item = items[index]!
    const row = rowOf.get(index)
    const notMember = membershipRefusal(row)
    if (notMember) return void (outcomes[index] = { kind: "error", error: notMember })
    if (row!.stored) return void (outcomes[index] = { kind: "duplicate", ownerIndex: null })
    const refused = postingRefusal(row!)
    if (refused) return void (outcomes[index] = { kind: "error", error: refused })
    // Deleted by another transaction since its access row was read (read committed).
    if (row!.seq === null || row!.pos === null)
      return void (outcomes[index] = { kind: "error", error: conversationErrors.notFound() })
    created.push({ index, id: ids[k]!, seq: Number(row!.seq), pos: Number(row!.pos), peer: row!.peer })
    if (!senders.has(item.senderId))
      senders.set(item.senderId, {
        display_name: row!.display_name,
        phone_number: row!.phone_number!,
        avatar_url: row!.avatar_url,
      })
  })
  // The batch's feed positions in item order (the multiset is what the transaction holds; see appendChanges).
  const positions = created.map((c) => c.pos).sort((a, b) => a - b)
  created.forEach(
    (c, k) =>
      (outcomes[c.index] = {
        kind: "stored",
        id: c.id,
        seq: c.seq,
        pos: positions[k]!,
        recipients: c.peer === null ? undefined : [c.peer],
      }),
  )
  return { outcomes, senders }
}
