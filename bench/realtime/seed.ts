/**
 * Seeds a bench server's database with users, each with one live session and an access token, through the
 * same repository and token functions the auth service uses (signing up 20,000 users through the SMS-code API
 * would only measure the sign-up path). The server has already migrated the database.
 */
import { insertUser } from "../../src/accounts/users.repository.ts"
import { insertSession } from "../../src/auth/sessions.repository.ts"
import { hashRefreshToken, newRefreshSalt, refreshTokenFor, signAccessToken } from "../../src/auth/tokens.ts"
import { loadConfig } from "../../src/config.ts"
import { appendChanges } from "../../src/sync/sync.repository.ts"
import { createDeps, type Deps } from "../../src/deps.ts"
import { createLogger } from "../../src/logger.ts"
import { benchSecret, type ServerProcess } from "./lib.ts"

/** A seeded user: id and an access token (valid for the run). */
export type BenchUser = { userId: string; token: string }

/** Opens deps on the bench server's database (SQLite in its data dir), for seeding only. */
export function benchDeps(server: ServerProcess): Deps {
  const config = loadConfig({
    env: {},
    overrides: {
      "data.dir": server.dataDir!,
      "database.url": "",
      "auth.jwt_secret": benchSecret,
      "auth.access_token_ttl": "6h",
      "database.durability": "normal",
      "log.level": "warn",
    },
  })
  return createDeps(config, { logger: createLogger("warn") })
}

/**
 * Creates `count` users with one session and access token each. `hidePresence` turns their
 * show_online_status off (a settings row, as the settings API would write it), so connecting them does not
 * broadcast user:online to every member of their groups.
 */
export async function seedUsers(
  deps: Deps,
  count: number,
  options: { prefix?: string; hidePresence?: boolean } = {},
): Promise<BenchUser[]> {
  const prefix = options.prefix ?? "bench"
  const users: BenchUser[] = []
  const now = Date.now()
  const chunk = 1000
  for (let start = 0; start < count; start += chunk) {
    await deps.database.db.transaction().execute(async (trx) => {
      for (let i = start; i < Math.min(count, start + chunk); i++) {
        const userId = Bun.randomUUIDv7()
        const sessionId = Bun.randomUUIDv7()
        // Phone numbers unique per run (the prefix keeps runs on one database apart).
        const phone = `+1999${String(hash(prefix) % 1000).padStart(3, "0")}${String(i).padStart(6, "0")}`
        await insertUser(trx, {
          id: userId,
          phone_number: phone,
          display_name: `${prefix} ${i}`,
          email: null,
          password_hash: null,
          is_verified: true,
          now,
        })
        const salt = newRefreshSalt()
        await insertSession(trx, {
          id: sessionId,
          user_id: userId,
          refresh_token_hash: hashRefreshToken(refreshTokenFor(deps.jwtSecret, sessionId, salt)),
          refresh_salt: salt,
          device_name: "bench",
          platform: "bench",
          ip: "127.0.0.1",
          now,
          expires_at: now + deps.config.auth.refresh_token_ttl * 1000,
        })
        const token = signAccessToken(
          deps.jwtSecret,
          { sub: userId, role: "REGULAR", sid: sessionId },
          now,
          deps.config.auth.access_token_ttl,
        )
        if (options.hidePresence)
          await trx
            .insertInto("user_settings")
            .values({ user_id: userId, show_online_status: 0, updated_at: now } as never)
            .execute()
        users.push({ userId, token })
      }
    })
  }
  return users
}

function hash(text: string): number {
  let h = 0
  for (const c of text) h = (h * 31 + c.charCodeAt(0)) >>> 0
  return h
}

/**
 * Creates one DIRECT conversation per pair, with the rows `POST /api/conversations` writes (conversation,
 * both memberships, their member.added feed entries), 500 pairs per transaction: 5,000 chats through the API
 * take a minute of fsynced transactions on this machine and would fill the server's CPU profile.
 */
export async function seedDirectConversations(
  deps: Deps,
  pairs: [BenchUser, BenchUser][],
): Promise<string[]> {
  const { db, dialect } = deps.database
  const now = Date.now()
  const ids: string[] = []
  for (let start = 0; start < pairs.length; start += 500) {
    const chunk = pairs.slice(start, start + 500).map(([a, b]) => ({ id: Bun.randomUUIDv7(), a, b }))
    await db.transaction().execute(async (trx) => {
      await trx
        .insertInto("conversations")
        .values(
          chunk.map(({ id, a, b }) => ({
            id,
            type: "DIRECT" as const,
            name: null,
            avatar_url: null,
            description: null,
            created_by: a.userId,
            direct_key: [a.userId, b.userId].sort().join(" "),
            created_at: now,
            updated_at: now,
          })),
        )
        .execute()
      const members = chunk.flatMap(({ id, a, b }) =>
        [a, b].map((u) => ({
          conversation_id: id,
          user_id: u.userId,
          role: "MEMBER" as const,
          joined_at: now,
          updated_at: now,
        })),
      )
      await trx.insertInto("conversation_members").values(members).execute()
      await appendChanges(
        trx,
        dialect,
        members.map((m) => ({
          conversationId: m.conversation_id,
          kind: "member.added" as const,
          data: { user_id: m.user_id },
        })),
        now,
      )
    })
    ids.push(...chunk.map((c) => c.id))
  }
  return ids
}

/**
 * Memberships for the idle scenario: each user gets `direct` DIRECT chats (user i with users i ± 1 … i ±
 * direct/2, on a ring) and is in `groups` GROUP conversations of `groupSize` members (round g puts user i in
 * group ⌊((i + g·stride) mod n) / groupSize⌋ of that round). Only the rows the delivery index reads are
 * written (conversations and memberships, 500 per statement): no feed entries, no group settings.
 * Returns each user's conversation ids, in the order of `users`.
 */
export async function seedMemberships(
  deps: Deps,
  users: BenchUser[],
  options: { direct: number; groups: number; groupSize: number },
): Promise<string[][]> {
  const { db } = deps.database
  const n = users.length
  const now = Date.now()
  const byUser: string[][] = users.map(() => [])
  const conversations: {
    id: string
    type: "DIRECT" | "GROUP"
    direct_key: string | null
    members: number[]
  }[] = []
  for (let d = 1; d <= Math.floor(options.direct / 2); d++)
    for (let i = 0; i < n; i++) {
      const j = (i + d) % n
      conversations.push({
        id: Bun.randomUUIDv7(),
        type: "DIRECT",
        direct_key: [users[i]!.userId, users[j]!.userId].sort().join(" "),
        members: [i, j],
      })
    }
  const perRound = Math.ceil(n / options.groupSize)
  const stride = Math.floor(n / Math.max(1, options.groups)) + 7
  for (let g = 0; g < options.groups; g++) {
    const groups = Array.from({ length: perRound }, () => ({
      id: Bun.randomUUIDv7(),
      type: "GROUP" as const,
      direct_key: null,
      members: [] as number[],
    }))
    for (let i = 0; i < n; i++)
      groups[Math.floor(((i + g * stride) % n) / options.groupSize)]!.members.push(i)
    conversations.push(...groups)
  }
  for (const c of conversations) for (const i of c.members) byUser[i]!.push(c.id)
  for (let start = 0; start < conversations.length; start += 500) {
    const chunk = conversations.slice(start, start + 500)
    await db.transaction().execute(async (trx) => {
      await trx
        .insertInto("conversations")
        .values(
          chunk.map((c) => ({
            id: c.id,
            type: c.type,
            name: c.type === "GROUP" ? "bench group" : null,
            avatar_url: null,
            description: null,
            created_by: users[c.members[0]!]!.userId,
            direct_key: c.direct_key,
            created_at: now,
            updated_at: now,
          })),
        )
        .execute()
      const members = chunk.flatMap((c) =>
        c.members.map((i) => ({
          conversation_id: c.id,
          user_id: users[i]!.userId,
          role: "MEMBER" as const,
          joined_at: now,
          updated_at: now,
        })),
      )
      for (let i = 0; i < members.length; i += 500)
        await trx
          .insertInto("conversation_members")
          .values(members.slice(i, i + 500))
          .execute()
    })
  }
  return byUser
}
