import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test"
import { group, send, signUpMany } from "./helpers/messaging.ts"
import { type TestServer, startTestServer } from "./helpers/server.ts"
import type { SignedUpUser } from "./helpers/users.ts"

// Real servers, real databases, child processes: generous on a loaded CI machine.
setDefaultTimeout(30_000)

let server: TestServer
let owner: SignedUpUser, peer: SignedUpUser, outsider: SignedUpUser
beforeAll(async () => {
  server = await startTestServer()
  ;[owner, peer, outsider] = await signUpMany(server, 3, "Authz")
})
afterAll(() => server.stop())

/** A fresh conversation (a group of owner and peer) with one message from peer, per row (some rows destroy it). */
type Fixture = { conversationId: string; messageId: string }

type Row = {
  name: string
  method: string
  path: (f: Fixture) => string
  body?: (f: Fixture) => unknown
  /** What a signed-in user who is not in the conversation gets. */
  outsider: number
  /** What a member gets. */
  member: number
}

const rows: Row[] = [
  { name: "list", method: "GET", path: () => "/api/conversations", outsider: 200, member: 200 },
  {
    name: "archived list",
    method: "GET",
    path: () => "/api/conversations/archived",
    outsider: 200,
    member: 200,
  },
  {
    name: "create",
    method: "POST",
    path: () => "/api/conversations",
    body: () => ({ type: "GROUP", participant_ids: [] }),
    outsider: 200,
    member: 200,
  },
  {
    name: "get",
    method: "GET",
    path: (f) => `/api/conversations/${f.conversationId}`,
    outsider: 403,
    member: 200,
  },
  {
    name: "history",
    method: "GET",
    path: (f) => `/api/conversations/${f.conversationId}/messages`,
    outsider: 403,
    member: 200,
  },
  ...["read", "archive", "unarchive", "mute", "unmute", "favorite", "favourite", "pin", "unpin"].map(
    (op): Row => ({
      name: op,
      method: "PUT",
      path: (f) => `/api/conversations/${f.conversationId}/${op}`,
      body: () => ({}),
      outsider: 404,
      member: 200,
    }),
  ),
  {
    name: "clear",
    method: "DELETE",
    path: (f) => `/api/conversations/${f.conversationId}/clear`,
    outsider: 404,
    member: 200,
  },
  {
    name: "leave",
    method: "DELETE",
    path: (f) => `/api/conversations/${f.conversationId}`,
    outsider: 404,
    member: 200, // run as the peer: the owner is the group's FOUNDER, who must hand over before leaving
  },
  {
    name: "send",
    method: "POST",
    path: () => "/api/messages",
    body: (f) => ({ conversation_id: f.conversationId, content: "hi" }),
    outsider: 403,
    member: 200,
  },
  { name: "starred", method: "GET", path: () => "/api/messages/starred", outsider: 200, member: 200 },
  {
    name: "search in conversation",
    method: "GET",
    path: (f) => `/api/messages/search?q=secret&conversationId=${f.conversationId}`,
    outsider: 403,
    member: 200,
  },
  {
    name: "forward into",
    method: "POST",
    path: () => "/api/messages/forward",
    body: (f) => ({ message_ids: [f.messageId], conversation_id: f.conversationId }),
    outsider: 403,
    member: 200,
  },
  {
    name: "edit",
    method: "PUT",
    path: (f) => `/api/messages/${f.messageId}`,
    body: () => ({ content: "x" }),
    outsider: 404,
    member: 200, // run as the peer, who sent it
  },
  {
    name: "delete",
    method: "DELETE",
    path: (f) => `/api/messages/${f.messageId}`,
    outsider: 404,
    member: 200,
  },
  {
    name: "star",
    method: "POST",
    path: (f) => `/api/messages/${f.messageId}/star`,
    body: () => ({}),
    outsider: 404,
    member: 200,
  },
  {
    name: "unstar",
    method: "DELETE",
    path: (f) => `/api/messages/${f.messageId}/star`,
    outsider: 404,
    member: 200,
  },
  {
    name: "status",
    method: "PUT",
    path: (f) => `/api/messages/${f.messageId}/status`,
    body: () => ({ status: "READ" }),
    outsider: 404,
    member: 200,
  },
  {
    name: "read messages",
    method: "POST",
    path: () => "/api/messages/read",
    body: (f) => ({ message_ids: [f.messageId] }),
    outsider: 200, // answers, but moves nothing: checked below
    member: 200,
  },
  { name: "sync", method: "GET", path: () => "/api/sync", outsider: 200, member: 200 },
]

const fixture = async (): Promise<Fixture> => {
  const conversationId = await group(server, owner, [peer])
  const m = await send(server, peer, conversationId, "secret message")
  return { conversationId, messageId: m.id }
}

describe("authorization of every messaging endpoint", () => {
  for (const row of rows) {
    test(`${row.method} ${row.name}: guest 401, bad token 401, outsider ${row.outsider}, member ${row.member}`, async () => {
      const f = await fixture()
      const call = (token?: string) => server.api(row.method, row.path(f), { token, body: row.body?.(f) })
      const guest = await call()
      expect(guest.status).toBe(401)
      expect(guest.headers.get("www-authenticate")).toContain("Bearer")
      expect((await call("not-a-token")).status).toBe(401)
      const asOutsider = await call(outsider.accessToken)
      expect(asOutsider.status).toBe(row.outsider)
      // Nothing of the conversation leaks to the outsider, whatever the status.
      expect(JSON.stringify(asOutsider.body)).not.toContain("secret message")
      expect(JSON.stringify(asOutsider.body)).not.toContain(f.messageId)
      const asMember = await call(
        row.name === "edit" || row.name === "leave" ? peer.accessToken : owner.accessToken,
      )
      expect(asMember.status).toBe(row.member)
    })
  }

  test("the outsider's attempts changed nothing", async () => {
    const f = await fixture()
    for (const row of rows)
      await server.api(row.method, row.path(f), { token: outsider.accessToken, body: row.body?.(f) })
    const page = await server.api("GET", `/api/conversations/${f.conversationId}/messages`, {
      token: owner.accessToken,
    })
    expect(page.body.messages.map((m: any) => [m.content, m.status, m.is_edited])).toEqual([
      ["secret message", "SENT", false],
    ])
    const item = (
      await server.api("GET", `/api/conversations/${f.conversationId}`, { token: owner.accessToken })
    ).body
    expect(item.participants.map((p: any) => p.id)).not.toContain(outsider.user.id)
    const feed = await server.api("GET", "/api/sync", { token: outsider.accessToken })
    expect(JSON.stringify(feed.body)).not.toContain(f.conversationId)
  })

  test("malformed ids are 404 on every id route", async () => {
    for (const id of ["x", "temp-123", "00000000-0000-7000-8000-000000000000", "a%2Fb"]) {
      const f = { conversationId: id, messageId: id }
      for (const row of rows.filter(
        (r) => r.path(f).includes(id) && r.outsider !== 200 && r.name !== "search in conversation",
      )) {
        const res = await server.api(row.method, row.path(f), {
          token: owner.accessToken,
          body: row.body?.(f),
        })
        expect({ row: row.name, id, status: res.status }).toEqual({ row: row.name, id, status: 404 })
      }
    }
  })
})

describe("blocks", () => {
  const block = async (blocker: SignedUpUser, blocked: SignedUpUser) =>
    expect(
      (
        await server.api("POST", `/api/settings/privacy/block/${blocked.user.id}`, {
          token: blocker.accessToken,
        })
      ).status,
    ).toBe(200)
  const unblock = async (blocker: SignedUpUser, blocked: SignedUpUser) =>
    expect(
      (
        await server.api("DELETE", `/api/settings/privacy/unblock/${blocked.user.id}`, {
          token: blocker.accessToken,
        })
      ).status,
    ).toBe(200)

  test("a block either way stops direct messages and new direct chats, both with 403", async () => {
    const [a, b, c] = await signUpMany(server, 3, "Blk")
    const chat = (
      await server.api("POST", "/api/conversations", {
        token: a!.accessToken,
        body: { type: "DIRECT", participant_ids: [b!.user.id] },
      })
    ).body.id
    expect(
      (
        await server.api("POST", "/api/messages", {
          token: a!.accessToken,
          body: { conversation_id: chat, content: "hi" },
        })
      ).status,
    ).toBe(200)
    await block(b!, a!)
    const fromBlocked = await server.api("POST", "/api/messages", {
      token: a!.accessToken,
      body: { conversation_id: chat, content: "hello?" },
    })
    expect(fromBlocked.status).toBe(403)
    expect(fromBlocked.body).toEqual({
      detail: "You cannot send messages to this user.",
      code: "message.blocked",
    })
    const fromBlocker = await server.api("POST", "/api/messages", {
      token: b!.accessToken,
      body: { conversation_id: chat, content: "x" },
    })
    expect(fromBlocker.status).toBe(403)
    expect(fromBlocker.body.detail).toBe("You have blocked this user. Unblock them to send messages.")
    for (const [from, to] of [
      [a!, b!],
      [b!, a!],
    ] as const) {
      const open = await server.api("POST", "/api/conversations", {
        token: from.accessToken,
        body: { type: "DIRECT", participant_ids: [to.user.id] },
      })
      expect(open.status).toBe(403)
      expect(open.body.code).toBe("conversation.blocked")
    }
    // A group of the blocked user with the blocker is refused too; without them it is fine.
    const withBlocker = await server.api("POST", "/api/conversations", {
      token: a!.accessToken,
      body: { type: "GROUP", participant_ids: [b!.user.id, c!.user.id] },
    })
    expect(withBlocker.status).toBe(403)
    const without = await server.api("POST", "/api/conversations", {
      token: a!.accessToken,
      body: { type: "GROUP", participant_ids: [c!.user.id] },
    })
    expect(without.status).toBe(200)
    // Nothing was stored while blocked, and unblocking restores messaging.
    const page = await server.api("GET", `/api/conversations/${chat}/messages`, { token: b!.accessToken })
    expect(page.body.messages.map((m: any) => m.content)).toEqual(["hi"])
    await unblock(b!, a!)
    expect(
      (
        await server.api("POST", "/api/messages", {
          token: a!.accessToken,
          body: { conversation_id: chat, content: "back" },
        })
      ).status,
    ).toBe(200)
  })
})
