/**
 * What push adds to each committed send: the background fan-out (who is offline, their switches, their live
 * tokens, blocks) measured per message beside the send itself (sendMessage, the baseline, same run).
 * Cases: a direct chat whose recipient is offline with no device token (every send of a server without
 * push clients pays this), the same with one token (log driver, nothing written), and a 500-member group
 * with every member offline and holding a token. CPU time is the process's (user + system), less disturbed
 * by other load than wall-clock time.
 * Run: bun bench/push.ts (SQLite in a temp directory), or with URGE_TEST_DATABASE_URL set (Postgres).
 */
import { scratchDeps } from "./lib.ts"
import { register } from "../src/auth/auth.service.ts"
import { createConversation } from "../src/conversations/conversations.service.ts"
import { sendMessage } from "../src/messages/messages.service.ts"
import { upsertDeviceToken } from "../src/push/push.repository.ts"

const { deps, close } = await scratchDeps()
const db = deps.database.db
const size = Number(process.env.GROUP_SIZE ?? 500)
const base = Date.now() % 1e7
const userIds: string[] = []
for (let i = 0; i < size; i++) {
  const phone = `+1555${String(base * 10 + i)
    .padStart(8, "0")
    .slice(-8)}`
  const { user } = await register(deps, { phone, displayName: `Bench ${i}` }, { ip: null, userAgent: null })
  userIds.push(user.id)
}
const addToken = async (userId: string) => {
  const session = await db
    .selectFrom("user_sessions")
    .select("id")
    .where("user_id", "=", userId)
    .executeTakeFirstOrThrow()
  await upsertDeviceToken(db, {
    token: `bench-${userId}`,
    userId,
    sessionId: session.id,
    platform: "android",
    now: Date.now(),
  })
}
const [sender, lonely, withToken] = userIds as [string, string, string]
const direct = (await createConversation(deps, sender, { type: "DIRECT", participant_ids: [lonely] })).id
const directWithToken = (
  await createConversation(deps, sender, { type: "DIRECT", participant_ids: [withToken] })
).id
await addToken(withToken)
const group = (
  await createConversation(deps, sender, { type: "GROUP", name: "Bench", participant_ids: userIds.slice(1) })
).id
for (const id of userIds.slice(3)) await addToken(id)

const time = async (label: string, n: number, run: () => Promise<unknown>) => {
  for (let i = 0; i < Math.min(n, 50); i++) await run()
  const cpu = process.cpuUsage()
  const start = performance.now()
  for (let i = 0; i < n; i++) await run()
  const wallUs = ((performance.now() - start) * 1000) / n
  const used = process.cpuUsage(cpu)
  const cpuUs = (used.user + used.system) / n
  console.log(
    `${label.padEnd(58)} cpu ${cpuUs.toFixed(0).padStart(6)} µs  wall ${wallUs.toFixed(0).padStart(6)} µs  (${deps.database.dialect}, n=${n})`,
  )
}
const emit = (conversationId: string) =>
  deps.events.emit({
    type: "conversation",
    conversationId,
    name: "message:received",
    data: {
      id: "m1",
      conversation_id: conversationId,
      sender_id: sender,
      sender_name: "Bench 0",
      content: "hi",
      message_type: "TEXT",
    },
  })

// Baseline: the send itself, push not listening.
await time("sendMessage, direct (baseline, push off)", 300, () =>
  sendMessage(deps, sender, { conversation_id: direct, content: "hi" }),
)
deps.push.start()
await time("push fan-out, direct, recipient offline, no token", 300, async () => {
  emit(direct)
  await deps.push.idle()
})
await time("push fan-out, direct, recipient offline, 1 token (log driver)", 300, async () => {
  emit(directWithToken)
  await deps.push.idle()
})
await time(`push fan-out, group of ${size}, ${size - 3} tokens (log driver)`, 30, async () => {
  emit(group)
  await deps.push.idle()
})
await time("sendMessage, direct, push on (send + its fan-out)", 300, async () => {
  await sendMessage(deps, sender, { conversation_id: direct, content: "hi" })
  await deps.push.idle()
})
await deps.push.stop()
await close()
