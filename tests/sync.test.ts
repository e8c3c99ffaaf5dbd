import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import type { DomainEvent } from "../src/events.ts"
import { directChat, group, history, send, signUpMany } from "./helpers/messaging.ts"
import { type TestServer, startTestServer } from "./helpers/server.ts"
import type { SignedUpUser } from "./helpers/users.ts"

let server: TestServer
beforeAll(async () => {
  server = await startTestServer()
})
afterAll(() => server.stop())

/** What a client keeps: visible messages per conversation (id → content, edited), and its membership. */
type ClientState = {
  messages: Map<string, Map<string, { content: string; edited: boolean; seq: number }>>
  cursor: string
}

const emptyState = (): ClientState => ({ messages: new Map(), cursor: "" })

/** Applies sync changes as a client would. */
function apply(state: ClientState, userId: string, changes: any[]) {
  const conv = (id: string) => {
    let m = state.messages.get(id)
    if (!m) state.messages.set(id, (m = new Map()))
    return m
  }
  for (const c of changes) {
    switch (c.type) {
      case "message.created":
      case "message.updated":
      case "message.deleted": {
        const m = c.data.message
        if (m.is_deleted) conv(m.conversation_id).delete(m.id)
        else conv(m.conversation_id).set(m.id, { content: m.content, edited: m.is_edited, seq: m.seq })
        break
      }
      case "message.hidden":
        conv(c.conversation_id).delete(c.data.message_id)
        break
      case "conversation.state": {
        const m = conv(c.conversation_id)
        for (const [id, v] of m) if (v.seq <= c.data.cleared_seq) m.delete(id)
        break
      }
      case "member.removed":
        if (c.data.user_id === userId) state.messages.delete(c.conversation_id)
        break
      case "member.added":
        if (c.data.user_id === userId) conv(c.conversation_id)
        break
    }
    state.cursor = c.cursor
  }
}

/** Pulls every page from the state's cursor. */
async function pull(user: SignedUpUser, state: ClientState, limit = 500) {
  for (;;) {
    const res = await server.api("GET", `/api/sync?since=${state.cursor}&limit=${limit}`, {
      token: user.accessToken,
    })
    expect(res.status).toBe(200)
    apply(state, user.user.id, res.body.changes)
    state.cursor = res.body.cursor
    if (!res.body.has_more) return state
  }
}

/** The server's truth for a user: the visible history of each of their conversations. */
async function serverState(user: SignedUpUser) {
  const out: Record<string, Record<string, { content: string; edited: boolean; seq: number }>> = {}
  const list = await server.api("GET", "/api/conversations?limit=500", { token: user.accessToken })
  const archived = await server.api("GET", "/api/conversations/archived?limit=500", {
    token: user.accessToken,
  })
  for (const c of [...list.body.conversations, ...archived.body.conversations]) {
    out[c.id] = Object.fromEntries(
      (await history(server, user, c.id)).map((m) => [
        m.id,
        { content: m.content, edited: m.is_edited, seq: m.seq },
      ]),
    )
  }
  return out
}

const flatten = (state: ClientState) =>
  Object.fromEntries(
    [...state.messages].filter(([, m]) => m.size > 0).map(([id, m]) => [id, Object.fromEntries(m)] as const),
  )
const nonEmpty = <T>(s: Record<string, Record<string, T>>) =>
  Object.fromEntries(Object.entries(s).filter(([, m]) => Object.keys(m).length > 0))

describe("GET /api/sync", () => {
  test("replaying from any cursor, in pages of any size, converges to the server's state", async () => {
    const [a, b, c] = await signUpMany(server, 3, "Sync")
    const ab = await directChat(server, a!, b!)
    const g = await group(server, b!, [a!, c!])
    const checkpoints: ClientState[] = []
    const snapshot = async () => checkpoints.push(structuredClone(await pull(a!, emptyState())))

    await snapshot()
    const m1 = await send(server, a!, ab, "one")
    const m2 = await send(server, b!, ab, "two")
    await send(server, c!, g, "group hello")
    await snapshot()
    await server.api("PUT", `/api/messages/${m1.id}`, {
      token: a!.accessToken,
      body: { content: "one (edited)" },
    })
    await server.api("DELETE", `/api/messages/${m2.id}`, { token: a!.accessToken }) // hide for a
    const m3 = await send(server, b!, ab, "three")
    await snapshot()
    await server.api("DELETE", `/api/messages/${m3.id}`, { token: b!.accessToken }) // delete for everyone
    await server.api("PUT", `/api/conversations/${ab}/read`, { token: a!.accessToken, body: {} })
    await server.api("PUT", `/api/conversations/${g}/archive`, { token: a!.accessToken, body: {} })
    await send(server, c!, g, "group two")
    await snapshot()
    await server.api("DELETE", `/api/conversations/${g}/clear`, { token: a!.accessToken })
    await send(server, c!, g, "after clear")
    await send(server, a!, ab, "four")

    const truth = nonEmpty(await serverState(a!))
    expect(Object.keys(truth).length).toBe(2)
    for (const [i, start] of checkpoints.entries()) {
      for (const limit of [1, 3, 500]) {
        const state = structuredClone(start)
        await pull(a!, state, limit)
        expect({ checkpoint: i, limit, state: flatten(state) }).toEqual({
          checkpoint: i,
          limit,
          state: truth,
        })
      }
    }
    // A caught-up client gets nothing more, with the same cursor back.
    const done = await pull(a!, emptyState())
    const again = await server.api("GET", `/api/sync?since=${done.cursor}`, { token: a!.accessToken })
    expect(again.body).toEqual({ changes: [], cursor: done.cursor, has_more: false })
  })

  test("a reader following the feed during concurrent sends misses nothing and sees each change once", async () => {
    const users = await signUpMany(server, 4, "Load")
    const [reader, ...writers] = users as [SignedUpUser, ...SignedUpUser[]]
    const chats = await Promise.all(writers.map((w) => directChat(server, w, reader)))
    const g = await group(server, writers[0]!, [reader, ...writers.slice(1)])
    const early = await Promise.all(
      Array.from({ length: 40 }, (_, i) => send(server, writers[0]!, chats[0]!, `early ${i}`)),
    )
    const seen: string[] = []
    const stars: string[] = []
    let cursor = ""
    let writing = true
    const collect = (changes: any[]) => {
      for (const ch of changes) {
        if (ch.type === "message.created") seen.push(ch.data.message.id)
        if (ch.type === "message.starred") stars.push(ch.data.message_id)
      }
    }
    const follow = (async () => {
      while (writing) {
        const res = await server.api("GET", `/api/sync?since=${cursor}`, { token: reader.accessToken })
        collect(res.body.changes)
        cursor = res.body.cursor
      }
    })()
    // Sends (group-committed) race with stars (one transaction each, concurrent on Postgres).
    const [sent] = await Promise.all([
      Promise.all(
        Array.from({ length: 120 }, (_, i) =>
          send(
            server,
            writers[i % writers.length]!,
            i % 4 === 3 ? g : chats[i % writers.length]!,
            `load ${i}`,
          ),
        ),
      ),
      Promise.all(
        early.map((m) =>
          server.api("POST", `/api/messages/${m.id}/star`, { token: reader.accessToken, body: {} }),
        ),
      ),
    ])
    writing = false
    await follow
    const rest = await server.api("GET", `/api/sync?since=${cursor}&limit=1000`, {
      token: reader.accessToken,
    })
    collect(rest.body.changes)
    const all = [...early, ...sent].map((m) => m.id)
    expect(seen.length).toBe(new Set(seen).size)
    expect(new Set(seen)).toEqual(new Set(all))
    expect(new Set(stars)).toEqual(new Set(early.map((m) => m.id)))
    expect(stars.length).toBe(early.length)
  })

  test("realtime events carry the cursor of the change, so a client can resume from it", async () => {
    const [a, b] = await signUpMany(server, 2, "Resume")
    const id = await directChat(server, a!, b!)
    const events: DomainEvent[] = []
    const off = server.deps.events.subscribe((e) => events.push(e))
    const first = await send(server, a!, id, "first")
    const second = await send(server, a!, id, "second")
    off()
    const received = events.filter((e) => e.type === "conversation" && e.name === "message:received") as any[]
    const cursorOfFirst = received.find((e) => e.data.id === first.id).cursor
    const res = await server.api("GET", `/api/sync?since=${cursorOfFirst}`, { token: b!.accessToken })
    expect(res.body.changes.map((c: any) => c.data.message?.id)).toEqual([second.id])
  })

  test("refusals: guest 401, a cursor we did not issue 400", async () => {
    const [a] = await signUpMany(server, 1, "Bad")
    expect((await server.api("GET", "/api/sync")).status).toBe(401)
    const bad = await server.api("GET", "/api/sync?since=2024-01-01T00:00:00Z", { token: a!.accessToken })
    expect(bad.status).toBe(400)
    expect(bad.body.code).toBe("sync.invalid_cursor")
  })

  test("a user who left a group keeps its removal, and nothing of the group after it", async () => {
    const [a, b] = await signUpMany(server, 2, "Quit")
    const g = await group(server, a!, [b!])
    await send(server, a!, g, "before")
    const start = await pull(b!, emptyState())
    await server.api("DELETE", `/api/conversations/${g}`, { token: b!.accessToken })
    await send(server, a!, g, "after")
    const res = await server.api("GET", `/api/sync?since=${start.cursor}`, { token: b!.accessToken })
    expect(res.body.changes.map((c: any) => [c.type, c.data.user_id])).toEqual([
      ["member.removed", b!.user.id],
    ])
  })
})
