import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test"
import { directChat, group, send, signUpMany } from "./helpers/messaging.ts"
import { type TestServer, startTestServer } from "./helpers/server.ts"
import type { SignedUpUser } from "./helpers/users.ts"

// Real servers, real databases, child processes: generous on a loaded CI machine.
setDefaultTimeout(30_000)

let server: TestServer
let alice: SignedUpUser, bob: SignedUpUser, carol: SignedUpUser, dave: SignedUpUser
beforeAll(async () => {
  server = await startTestServer()
  ;[alice, bob, carol, dave] = await signUpMany(server, 4)
})
afterAll(() => server.stop())

const list = async (user: SignedUpUser, path = "/api/conversations") => {
  const res = await server.api("GET", path, { token: user.accessToken })
  expect(res.status).toBe(200)
  return res.body
}

describe("creating conversations", () => {
  test("a direct conversation is created once per pair; either side gets the same one", async () => {
    const [a, b] = await signUpMany(server, 2, "Pair")
    const first = await server.api("POST", "/api/conversations", {
      token: a!.accessToken,
      body: { type: "DIRECT", participant_ids: [b!.user.id] },
    })
    expect(first.status).toBe(200)
    expect(first.body).toMatchObject({ type: "DIRECT", name: "Pair 2", unreadCount: 0, lastMessage: null })
    expect(first.body.participants.map((p: any) => p.id).sort()).toEqual([a!.user.id, b!.user.id].sort())
    const again = await directChat(server, b!, a!)
    expect(again).toBe(first.body.id)
    // Concurrent creates meet on the same row.
    const [c, d] = await signUpMany(server, 2, "Race")
    const ids = await Promise.all([
      directChat(server, c!, d!),
      directChat(server, d!, c!),
      directChat(server, c!, d!),
    ])
    expect(new Set(ids).size).toBe(1)
  })

  test("type other than GROUP is DIRECT; a direct chat needs exactly one other existing user", async () => {
    const odd = await server.api("POST", "/api/conversations", {
      token: alice.accessToken,
      body: { type: "whatever", participant_ids: [carol.user.id] },
    })
    expect(odd.status).toBe(200)
    expect(odd.body.type).toBe("DIRECT")
    const self = await server.api("POST", "/api/conversations", {
      token: alice.accessToken,
      body: { type: "DIRECT", participant_ids: [alice.user.id] },
    })
    expect(self.status).toBe(400)
    const unknown = await server.api("POST", "/api/conversations", {
      token: alice.accessToken,
      body: { type: "DIRECT", participant_ids: ["not-a-user"] },
    })
    expect(unknown.status).toBe(404)
    expect(unknown.body.code).toBe("user.not_found")
    const missing = await server.api("POST", "/api/conversations", {
      token: alice.accessToken,
      body: { type: "DIRECT" },
    })
    expect(missing.status).toBe(422)
  })

  test("a group makes the creator FOUNDER and the others MEMBER", async () => {
    const id = await group(server, alice, [bob, carol], "Team")
    const res = await server.api("GET", `/api/conversations/${id}`, { token: bob.accessToken })
    expect(res.status).toBe(200)
    expect(res.body).toMatchObject({
      type: "GROUP",
      name: "Team",
      participant_count: 3,
      current_user_role: "MEMBER",
    })
    const roles = Object.fromEntries(res.body.participants.map((p: any) => [p.id, p.role]))
    expect(roles[alice.user.id]).toBe("FOUNDER")
    expect(roles[carol.user.id]).toBe("MEMBER")
  })
})

describe("the conversation list", () => {
  test("newest activity first, never-messaged last, with unread counts and the last visible message", async () => {
    const [u, v, w, x] = await signUpMany(server, 4, "List")
    const quiet = await directChat(server, u!, x!)
    const first = await directChat(server, u!, v!)
    const second = await directChat(server, u!, w!)
    server.clock.advance(1000)
    await send(server, v!, first, "from v")
    server.clock.advance(1000)
    await send(server, w!, second, "from w 1")
    await send(server, w!, second, "from w 2", { message_type: "image", media_url: "https://x/y.jpg" })
    const body = await list(u!)
    expect(body.conversations.map((c: any) => c.id)).toEqual([second, first, quiet])
    expect(body.total).toBe(3)
    const top = body.conversations[0]
    expect(top).toMatchObject({
      name: "List 3",
      unreadCount: 2,
      unread_count: 2,
      participantCount: 2,
      isMuted: false,
      isArchived: false,
      isFavourite: false,
    })
    expect(top.lastMessage).toMatchObject({ messageType: "IMAGE", type: "IMAGE", senderId: w!.user.id })
    expect(top.last_message.created_at).toMatch(/Z$/)
    expect(top.lastMessageAt).toMatch(/Z$/)
    expect(top.participants.find((p: any) => p.id === w!.user.id)).toMatchObject({ display_name: "List 3" })
    // The sender's own message is not unread to them.
    const wView = (await list(w!)).conversations.find((c: any) => c.id === second)
    expect(wView.unreadCount).toBe(0)
    // Marking read clears the count for the reader only.
    expect(
      (await server.api("PUT", `/api/conversations/${second}/read`, { token: u!.accessToken, body: {} }))
        .status,
    ).toBe(200)
    expect((await list(u!)).conversations[0].unreadCount).toBe(0)
    // limit/offset page the list.
    const page = await list(u!, "/api/conversations?limit=1&offset=1")
    expect(page).toMatchObject({ limit: 1, offset: 1, total: 3 })
    expect(page.conversations.map((c: any) => c.id)).toEqual([first])
  })

  test("archive, mute, favourite and pin are per user", async () => {
    const [u, v] = await signUpMany(server, 2, "Flags")
    const id = await directChat(server, u!, v!)
    const put = (path: string, body: unknown = {}) =>
      server.api("PUT", `/api/conversations/${id}/${path}`, { token: u!.accessToken, body })
    expect((await put("archive")).status).toBe(200)
    expect((await list(u!)).conversations.map((c: any) => c.id)).not.toContain(id)
    const archived = await list(u!, "/api/conversations/archived")
    expect(archived.conversations.map((c: any) => c.id)).toEqual([id])
    expect(archived.conversations[0]).toMatchObject({ isArchived: true, name: "Flags 2" })
    // The other member is not affected.
    expect((await list(v!)).conversations[0]).toMatchObject({ id, isArchived: false })
    expect((await put("unarchive")).status).toBe(200)

    expect((await put("mute")).body).toMatchObject({ success: true, is_muted: true, muted_until: null })
    const one = await server.api("GET", `/api/conversations/${id}`, { token: u!.accessToken })
    expect(one.body).toMatchObject({ isMuted: true, is_muted: true })
    expect(
      (await server.api("GET", `/api/conversations/${id}`, { token: v!.accessToken })).body.isMuted,
    ).toBe(false)
    expect((await put("unmute")).body.is_muted).toBe(false)
    // A timed mute ends by itself.
    const until = new Date(server.clock.now() + 60_000).toISOString()
    expect((await put("mute", { until })).body).toMatchObject({ is_muted: true, muted_until: until })
    server.clock.advance(61_000)
    expect(
      (await server.api("GET", `/api/conversations/${id}`, { token: u!.accessToken })).body.isMuted,
    ).toBe(false)
    expect((await put("mute", { until: new Date(server.clock.now() - 1000).toISOString() })).status).toBe(400)

    expect((await put("favorite")).body.is_favorite).toBe(true)
    expect((await put("favorite")).body.is_favorite).toBe(false)
    expect((await put("favorite", { favorite: true })).body.is_favorite).toBe(true)
    expect((await list(u!)).conversations[0].isFavourite).toBe(true)
    expect((await list(v!)).conversations[0].isFavourite).toBe(false)

    // A pinned conversation comes first even when older.
    const other = await directChat(server, u!, alice)
    await send(server, alice, other, "newer")
    expect((await list(u!)).conversations[0].id).toBe(other)
    expect((await put("pin")).status).toBe(200)
    expect((await list(u!)).conversations.map((c: any) => c.id)).toEqual([id, other])
    expect((await put("unpin")).status).toBe(200)
    expect((await list(u!)).conversations[0].id).toBe(other)
  })

  test("clear history is for the caller only", async () => {
    const [u, v] = await signUpMany(server, 2, "Clear")
    const id = await directChat(server, u!, v!)
    await send(server, u!, id, "one")
    await send(server, v!, id, "two")
    const cleared = await server.api("DELETE", `/api/conversations/${id}/clear`, { token: u!.accessToken })
    expect(cleared.status).toBe(200)
    const mine = await server.api("GET", `/api/conversations/${id}/messages`, { token: u!.accessToken })
    expect(mine.body.messages).toEqual([])
    const theirs = await server.api("GET", `/api/conversations/${id}/messages`, { token: v!.accessToken })
    expect(theirs.body.messages.map((m: any) => m.content)).toEqual(["one", "two"])
    const item = (await list(u!)).conversations.find((c: any) => c.id === id)
    expect(item).toMatchObject({ lastMessage: null, unreadCount: 0 })
    await send(server, v!, id, "three")
    const after = await server.api("GET", `/api/conversations/${id}/messages`, { token: u!.accessToken })
    expect(after.body.messages.map((m: any) => m.content)).toEqual(["three"])
    expect((await list(u!)).conversations.find((c: any) => c.id === id).unreadCount).toBe(1)
  })

  test("leaving: a group member leaves; a direct chat disappears until the other writes again", async () => {
    const [u, v, w] = await signUpMany(server, 3, "Leave")
    const g = await group(server, u!, [v!, w!])
    const left = await server.api("DELETE", `/api/conversations/${g}`, { token: w!.accessToken })
    expect(left.body).toEqual({ success: true, message: "Left conversation" })
    expect((await server.api("GET", `/api/conversations/${g}`, { token: w!.accessToken })).status).toBe(403)
    expect((await server.api("DELETE", `/api/conversations/${g}`, { token: w!.accessToken })).status).toBe(
      404,
    )
    const members = (await server.api("GET", `/api/conversations/${g}`, { token: u!.accessToken })).body
      .participants
    expect(members.map((p: any) => p.id)).not.toContain(w!.user.id)
    // Leaving a group this way is leaving the group: the others see why, and the founder must hand over first.
    const history = await server.api("GET", `/api/conversations/${g}/messages`, { token: u!.accessToken })
    expect(history.body.messages.at(-1)).toMatchObject({
      message_type: "SYSTEM",
      content: expect.stringContaining("left the group"),
    })
    const founder = await server.api("DELETE", `/api/conversations/${g}`, { token: u!.accessToken })
    expect(founder.status).toBe(403)

    const d = await directChat(server, u!, v!)
    await send(server, v!, d, "hi")
    expect((await server.api("DELETE", `/api/conversations/${d}`, { token: u!.accessToken })).status).toBe(
      200,
    )
    expect((await list(u!)).conversations.map((c: any) => c.id)).not.toContain(d)
    await send(server, v!, d, "are you there?")
    const back = (await list(u!)).conversations.find((c: any) => c.id === d)
    expect(back).toMatchObject({ unreadCount: 1, lastMessage: { content: "are you there?" } })
    const h = await server.api("GET", `/api/conversations/${d}/messages`, { token: u!.accessToken })
    expect(h.body.messages.map((m: any) => m.content)).toEqual(["are you there?"])
  })

  test("the list carries at most 10 participants per group; the count is exact and GET has them all", async () => {
    const people = await signUpMany(server, 12, "Crowd")
    const id = await group(server, people[0]!, people.slice(1))
    const item = (await list(people[0]!)).conversations.find((c: any) => c.id === id)
    expect(item.participants).toHaveLength(10)
    expect(item).toMatchObject({ participantCount: 12, participant_count: 12 })
    const one = await server.api("GET", `/api/conversations/${id}`, { token: people[5]!.accessToken })
    expect(one.body.participants).toHaveLength(12)
    expect(item.participants.map((p: any) => p.id)).toEqual(
      one.body.participants.slice(0, 10).map((p: any) => p.id),
    )
  })

  test("unknown and malformed ids are 404, never 422 or 500", async () => {
    for (const id of ["nope", "00000000-0000-0000-0000-000000000000", "%20", "' or 1=1 --"]) {
      const path = `/api/conversations/${encodeURIComponent(id)}`
      expect((await server.api("GET", path, { token: dave.accessToken })).status).toBe(404)
      expect((await server.api("GET", `${path}/messages`, { token: dave.accessToken })).status).toBe(404)
      expect((await server.api("PUT", `${path}/archive`, { token: dave.accessToken, body: {} })).status).toBe(
        404,
      )
      expect((await server.api("DELETE", `${path}/clear`, { token: dave.accessToken })).status).toBe(404)
    }
  })

  test("the list answers at the root too, as the app's production build calls it", async () => {
    const res = await server.api("GET", "/conversations?limit=50&offset=0", { token: alice.accessToken })
    expect(res.status).toBe(200)
    expect(Array.isArray(res.body.conversations)).toBe(true)
  })
})
