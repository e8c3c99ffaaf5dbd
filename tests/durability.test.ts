import { afterAll, describe, expect, test } from "bun:test"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Database } from "bun:sqlite"
import { copyFileSync } from "node:fs"
import { ChildServer } from "./helpers/child.ts"
import { directChat, send } from "./helpers/messaging.ts"
import { createTestDatabase, dialectUnderTest, startTestServer, testPostgresUrl } from "./helpers/server.ts"
import { waitFor } from "./helpers/wait.ts"
import { signUp } from "./helpers/users.ts"

/**
 * Acknowledged means committed: the real server runs as a child process (`urge serve`), takes a concurrent
 * send load, is killed with SIGKILL in the middle of it, restarts on the same data, and every message it
 * acknowledged is there, once.
 */

const cleanups: (() => Promise<void> | void)[] = []
afterAll(async () => {
  for (const c of cleanups.reverse()) await c()
})

describe("durability", () => {
  test("kill -9 during a send load: every acknowledged message survives, none is duplicated", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "urge-kill9-"))
    cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }))
    const env: Record<string, string> = {
      URGE_DATA_DIR: dataDir,
      URGE_SERVER_HOST: "127.0.0.1",
      URGE_SERVER_PORT: "0",
      URGE_AUTH_JWT_SECRET: "kill9-secret-kill9-secret-kill9-secret",
      URGE_RATE_LIMIT_ENABLED: "false",
      URGE_LOG_REQUESTS: "false",
      URGE_DATABASE_DURABILITY: "full",
    }
    if (testPostgresUrl) {
      const database = await createTestDatabase()
      cleanups.push(database.drop)
      env.URGE_DATABASE_URL = database.url
    }
    let server = await ChildServer.start(env)
    cleanups.push(() => server.proc.kill("SIGKILL"))
    const a = await signUp(server as any, { displayName: "Killer A" })
    const b = await signUp(server as any, { displayName: "Killer B" })
    const chat = await server.api("POST", "/api/conversations", {
      token: a.accessToken,
      body: { type: "DIRECT", participant_ids: [b.user.id] },
    })
    expect(chat.status).toBe(200)
    const conversationId = chat.body.id

    // 16 clients send one after another; the server is killed once 150 sends are acknowledged.
    const acked = new Map<string, { id: string; content: string }>()
    const attempted: { clientId: string; content: string; token: string }[] = []
    let killed = false
    const killAt = 150
    const clients = Array.from({ length: 16 }, async (_, c) => {
      const user = c % 2 ? a : b
      for (let i = 0; !killed; i++) {
        const clientId = `k-${c}-${i}`
        // One word of its own per message: the search after the restart looks each one up.
        const content = `load k${c}x${i}z`
        attempted.push({ clientId, content, token: user.accessToken })
        try {
          const res = await server.api("POST", "/api/messages", {
            token: user.accessToken,
            body: { conversation_id: conversationId, content, client_message_id: clientId },
          })
          if (res.status === 200) acked.set(clientId, { id: res.body.id, content })
        } catch {
          return // connection refused or reset: the server is gone
        }
        if (acked.size >= killAt && !killed) {
          killed = true
          await server.kill9()
        }
      }
    })
    await Promise.all(clients)
    expect(acked.size).toBeGreaterThanOrEqual(killAt)

    server = await ChildServer.start(env)
    const allMessages = async () => {
      const out: any[] = []
      for (let after = 0; ;) {
        const page = await server.api(
          "GET",
          `/api/conversations/${conversationId}/messages?since_seq=${after}&limit=200`,
          { token: a.accessToken },
        )
        expect(page.status).toBe(200)
        out.push(...page.body.messages)
        if (!page.body.has_more) return out
        after = page.body.messages.at(-1).seq
      }
    }
    const messages = await allMessages()
    const byId = new Map(messages.map((m) => [m.id, m]))
    for (const [clientId, m] of acked) {
      expect({ clientId, content: byId.get(m.id)?.content }).toEqual({ clientId, content: m.content })
    }
    // Searchable too (SQLite indexes after the send, from a position kept with the index).
    for (const [clientId, m] of acked) {
      const word = m.content.split(" ")[1]
      const found = await server.api("GET", `/api/messages/search?q=${word}`, { token: a.accessToken })
      expect({ clientId, ids: found.body.messages?.map((f: any) => f.id) }).toEqual({ clientId, ids: [m.id] })
    }
    // One row per client id, seqs without holes.
    const clientIds = messages.map((m) => m.client_message_id)
    expect(new Set(clientIds).size).toBe(clientIds.length)
    expect(messages.map((m) => m.seq)).toEqual(messages.map((_, i) => i + 1))
    // Retrying every attempt after the restart (as a client would) creates nothing twice.
    for (const { clientId, content, token } of attempted) {
      const res = await server.api("POST", "/api/messages", {
        token,
        body: { conversation_id: conversationId, content, client_message_id: clientId },
      })
      expect(res.status).toBe(200)
      if (acked.has(clientId)) expect(res.body.id).toBe(acked.get(clientId)!.id)
    }
    const final = await allMessages()
    expect(final.length).toBe(attempted.length)
    expect(new Set(final.map((m) => m.client_message_id)).size).toBe(attempted.length)
    await server.kill9()
  }, 60_000)

  // SQLite: checkpoints run on a worker thread (src/db/wal.ts), not in the server's commits. A few sends stay
  // far below both the backstop and SQLite's default autocheckpoint, so only the worker can have copied them
  // from the WAL into the database file itself: a copy of that file alone, without its WAL, holds them.
  test.if(dialectUnderTest === "sqlite")(
    "sends reach the database file through the background checkpointer",
    async () => {
      const server = await startTestServer()
      cleanups.push(() => server.stop())
      const [a, b] = [await signUp(server, { displayName: "A" }), await signUp(server, { displayName: "B" })]
      const conversationId = await directChat(server, a!, b!)
      const sent = await send(server, a!, conversationId, "checkpointed")
      const file = join(server.deps.config.data.dir, "urge.db")
      const copy = join(server.deps.config.data.dir, "copy.db")
      await waitFor(() => {
        copyFileSync(file, copy)
        const db = new Database(copy)
        try {
          return !!db.query("select 1 from messages where id = ?").get(sent.id)
        } finally {
          db.close()
        }
      })
    },
  )

  // SQLite indexes search after the send, into a database of its own, from a worker (src/messages/search.indexer.ts),
  // and a search first waits for what is pending. Another process holding the main database's write lock (a CLI,
  // a backup) no longer stops it; one holding the search database's lock makes indexing fail: the search still
  // answers, from the index as it is, and the messages are found once the lock is gone.
  test.if(dialectUnderTest === "sqlite")(
    "search indexes while another process holds the write lock, and answers while the index's lock is held",
    async () => {
      const server = await startTestServer({ config: { "database.busy_timeout": 200 } })
      cleanups.push(() => server.stop())
      await server.deps.searchIndex.stop() // only the search's own catch-up indexes from here
      const [a, b] = [await signUp(server, { displayName: "A" }), await signUp(server, { displayName: "B" })]
      const conversationId = await directChat(server, a!, b!)
      const search = async () => {
        const res = await server.api("GET", "/api/messages/search?q=lemur", { token: b!.accessToken })
        expect(res.status).toBe(200)
        return res.body.messages.map((m: any) => m.content)
      }
      await send(server, a!, conversationId, "lemur one")
      expect(await search()).toEqual(["lemur one"])
      await send(server, a!, conversationId, "lemur two")
      const holdLock = async (file: string, body: () => Promise<void>) => {
        const other = new Database(join(server.deps.config.data.dir, file))
        other.exec("begin immediate")
        try {
          await body()
        } finally {
          other.exec("rollback")
          other.close()
        }
      }
      await holdLock("urge.db", async () => expect(await search()).toEqual(["lemur two", "lemur one"]))
      await send(server, a!, conversationId, "lemur three")
      await holdLock("urge-search.db", async () => expect(await search()).toEqual(["lemur two", "lemur one"]))
      expect(await search()).toEqual(["lemur three", "lemur two", "lemur one"])
    },
  )
})
