import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { loadConfig } from "./src/config.ts"
import { createDeps } from "./src/deps.ts"
import { migrateUp } from "./src/db/migrate.ts"
import { createConversation, listConversations, updateConversationFlag, leaveConversation } from "./src/conversations/conversations.service.ts"
import { sendMessage, listConversationMessages, editMessage, deleteMessage, markConversationRead, setStar, listStarred, forwardMessages } from "./src/messages/messages.service.ts"
import { searchMessages } from "./src/messages/messages.search.ts"
import { listChangesSince } from "./src/sync/sync.service.ts"
import pg from "pg"
const testPostgresUrl = process.env.URGE_TEST_DATABASE_URL || ""
async function createTestDatabase() {
  const name = `scr_${Date.now()}`
  const admin = new pg.Client({ connectionString: testPostgresUrl }); await admin.connect(); await admin.query(`create database ${name}`); await admin.end()
  const url = new URL(testPostgresUrl); url.pathname = `/${name}`
  return { url: url.toString(), drop: async () => { const c = new pg.Client({ connectionString: testPostgresUrl }); await c.connect(); await c.query(`drop database ${name} with (force)`); await c.end() } }
}

const pgdb = testPostgresUrl ? await createTestDatabase() : null
const config = loadConfig({ env: {}, overrides: { "data.dir": mkdtempSync(join(tmpdir(), "scr-")), "database.url": pgdb?.url ?? "", "auth.jwt_secret": "x" } })
const deps = createDeps(config)
await migrateUp(deps.database.db)
const events: any[] = []
deps.events.subscribe((e) => events.push(e))
const now = Date.now()
const mk = async (name: string) => {
  const id = Bun.randomUUIDv7()
  await deps.database.db.insertInto("users").values({ id, phone_number: "+1" + Math.floor(Math.random() * 1e10), display_name: name, email: null, password_hash: null, avatar_url: null, bio: null, is_verified: false, last_seen: null, created_at: now, updated_at: now } as any).execute()
  return id
}
const a = await mk("Alice"), b = await mk("Bob"), c = await mk("Carol")
const d1 = await createConversation(deps, a, { type: "DIRECT", participant_ids: [b] })
const d2 = await createConversation(deps, b, { type: "DIRECT", participant_ids: [a] })
console.log("direct same:", d1.id === d2.id, d1.name, d2.name)
const g = await createConversation(deps, a, { type: "GROUP", participant_ids: [b, c], name: "G" })
const sends = await Promise.all([1, 2, 3, 4, 5].map((i) => sendMessage(deps, a, { conversation_id: d1.id, content: `hello world ${i}`, client_message_id: `c${i}` })))
console.log("seqs", sends.map((s) => s.message.seq), sends.map((s) => s.cursor))
const dup = await Promise.all([sendMessage(deps, a, { conversation_id: d1.id, content: "x", client_message_id: "c1" }), sendMessage(deps, a, { conversation_id: d1.id, content: "y", client_message_id: "z1" }), sendMessage(deps, a, { conversation_id: d1.id, content: "y", client_message_id: "z1" })])
console.log("dup", dup.map((d) => [d.message.id === sends[0]!.message.id, d.created, d.message.seq]))
await sendMessage(deps, b, { conversation_id: d1.id, content: "reply", reply_to_id: sends[0]!.message.id })
await sendMessage(deps, b, { conversation_id: d1.id, content: "temp reply", reply_to_id: "temp-123" })
const list = await listConversations(deps, a, { archived: false })
console.log("list", list.total, list.conversations.map((x) => [x.type, x.name, x.unreadCount, x.lastMessage?.content]))
const hist = await listConversationMessages(deps, a, d1.id, { limit: 3 })
console.log("hist", hist.messages.map((m) => [m.seq, m.content, m.status, m.reply_to?.content]), hist.has_more)
const older = await listConversationMessages(deps, a, d1.id, { limit: 3, before: hist.messages[0]!.id })
console.log("older", older.messages.map((m) => m.seq), older.has_more)
await markConversationRead(deps, a, d1.id)
const hist2 = await listConversationMessages(deps, b, d1.id, { since_seq: 0, limit: 100 })
console.log("status for b", hist2.messages.map((m) => m.status))
await editMessage(deps, a, sends[1]!.message.id, "edited hello")
await deleteMessage(deps, a, sends[2]!.message.id)
await deleteMessage(deps, b, sends[3]!.message.id)
console.log("b sees", (await listConversationMessages(deps, b, d1.id, { limit: 100 })).messages.map((m) => m.content))
console.log("a sees", (await listConversationMessages(deps, a, d1.id, { limit: 100 })).messages.map((m) => m.content))
await setStar(deps, b, sends[0]!.message.id, true)
console.log("starred", (await listStarred(deps, b)).messages.map((m) => m.content))
console.log("search a hello", (await searchMessages(deps, a, { q: "hel" })).messages.map((m) => m.content))
console.log("search b hello", (await searchMessages(deps, b, { q: "hello", conversationId: d1.id })).messages.map((m) => m.content))
console.log("search c hello", (await searchMessages(deps, c, { q: "hello" })).messages.map((m) => m.content))
await forwardMessages(deps, a, [sends[0]!.message.id, "temp-1"], g.id)
await updateConversationFlag(deps, a, g.id, { op: "archive" })
await updateConversationFlag(deps, a, d1.id, { op: "clear" })
console.log("a search after clear", (await searchMessages(deps, a, { q: "hello" })).messages.map((m) => [m.content, m.conversation_id === g.id]))
console.log("list after", (await listConversations(deps, a, { archived: false })).conversations.map((x) => [x.type, x.lastMessage?.content, x.unreadCount]))
console.log("archived", (await listConversations(deps, a, { archived: true })).conversations.map((x) => [x.type, x.lastMessage?.content, x.unreadCount]))
await leaveConversation(deps, c, g.id)
const feed = await listChangesSince(deps, b, "", 100)
console.log("feed b", feed.changes.map((x) => x.type + ":" + JSON.stringify(x.data).slice(0, 60)), feed.cursor)
const feedc = await listChangesSince(deps, c, "", 100)
console.log("feed c", feedc.changes.map((x) => x.type))
console.log("events", events.map((e) => e.type + ":" + (e.name ?? "") + ":" + (e.cursor ?? "")).join(" "))
await deps.close()
await pgdb?.drop()
