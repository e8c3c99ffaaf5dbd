import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test"
import type { DomainEvent } from "../src/events.ts"
import { directChat, group, history, send, signUpMany } from "./helpers/messaging.ts"
import { type TestServer, startTestServer } from "./helpers/server.ts"
import { waitFor } from "./helpers/wait.ts"
import type { SignedUpUser } from "./helpers/users.ts"

// Real servers, real databases, child processes: generous on a loaded CI machine.
setDefaultTimeout(30_000)

let server: TestServer
let alice: SignedUpUser, bob: SignedUpUser, carol: SignedUpUser
let chat: string
const events: DomainEvent[] = []
beforeAll(async () => {
  server = await startTestServer()
  server.deps.events.subscribe((e) => events.push(e))
  ;[alice, bob, carol] = await signUpMany(server, 3)
  chat = await directChat(server, alice, bob)
})
afterAll(() => server.stop())

const eventsNamed = (name: string) =>
  events.filter(
    (e): e is Extract<DomainEvent, { type: "conversation" }> => e.type === "conversation" && e.name === name,
  )

describe("sending", () => {
  test("all nine types; empty content for media; any case; unknown types become TEXT", async () => {
    const types = ["TEXT", "IMAGE", "VIDEO", "AUDIO", "DOCUMENT", "VOICE", "LOCATION", "CONTACT", "SYSTEM"]
    for (const type of types) {
      const m = await send(server, alice, chat, type === "IMAGE" ? "" : `a ${type}`, {
        message_type: type.toLowerCase(),
        media_url: "https://cdn.example/x",
      })
      expect(m).toMatchObject({ message_type: type, type, conversation_id: chat, sender_id: alice.user.id })
    }
    const odd = await send(server, alice, chat, "?", { message_type: "hologram" })
    expect(odd.message_type).toBe("TEXT")
    const m = await send(server, alice, chat, "full shape", { audio_duration: 12 })
    expect(m).toMatchObject({
      content: "full shape",
      status: "SENT",
      sender_name: "User 1",
      is_edited: false,
      is_deleted: false,
      is_encrypted: false,
      is_starred: false,
      is_forwarded: false,
      audio_duration: 12,
      reply_to: null,
    })
    expect(m.created_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
    expect(typeof m.seq).toBe("number")
  })

  test("seq increases by one per message in a conversation, also under concurrent sends", async () => {
    const [u, v] = await signUpMany(server, 2, "Seq")
    const id = await directChat(server, u!, v!)
    const sent = await Promise.all(
      Array.from({ length: 30 }, (_, i) => send(server, i % 2 ? u! : v!, id, `m${i}`)),
    )
    expect(sent.map((m) => m.seq).sort((a, b) => a - b)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1))
    const all = await history(server, u!, id)
    expect(all.map((m) => m.seq)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1))
  })

  test("a reply carries reply_to from the same conversation; temp ids and other conversations are ignored", async () => {
    const original = await send(server, bob, chat, "")
    const reply = await send(server, alice, chat, "re", { reply_to_id: original.id })
    expect(reply.reply_to).toEqual({ id: original.id, sender_name: "User 2", content: "Media" })
    const temp = await send(server, alice, chat, "re temp", { reply_to_id: "temp-1700000000000" })
    expect(temp).toMatchObject({ reply_to_id: null, reply_to: null })
    const elsewhere = await directChat(server, alice, carol)
    const foreign = await send(server, alice, elsewhere, "x", { reply_to_id: original.id })
    expect(foreign.reply_to).toBeNull()
    // History shows the reply too.
    const page = await server.api("GET", `/api/conversations/${chat}/messages?limit=3`, {
      token: bob.accessToken,
    })
    const shown = page.body.messages.find((m: any) => m.id === reply.id)
    expect(shown.reply_to).toEqual({ id: original.id, sender_name: "User 2", content: "Media" })
  })

  test("client_message_id: a retry returns the original, also when sent concurrently", async () => {
    const first = await send(server, alice, chat, "once", { client_message_id: "c-1" })
    const retry = await send(server, alice, chat, "changed", { client_message_id: "c-1" })
    expect(retry.id).toBe(first.id)
    expect(retry.content).toBe("once")
    const burst = await Promise.all(
      Array.from({ length: 10 }, () => send(server, alice, chat, "burst", { client_message_id: "c-2" })),
    )
    expect(new Set(burst.map((m) => m.id)).size).toBe(1)
    // Another user may use the same client id.
    const other = await send(server, bob, chat, "bob's", { client_message_id: "c-1" })
    expect(other.id).not.toBe(first.id)
    const all = await history(server, alice, chat)
    expect(all.filter((m) => m.content === "burst")).toHaveLength(1)
    // The announcement went out once.
    expect(eventsNamed("message:received").filter((e) => e.data.id === burst[0].id)).toHaveLength(1)
  })

  test("a burst mixing sends, refusals and repeated client ids: each gets its own answer, seqs stay gap-free", async () => {
    const [u, v, outsider] = await signUpMany(server, 3, "Burst")
    const id = await directChat(server, u!, v!)
    const stored = await send(server, u!, id, "stored before", { client_message_id: "burst-old" })
    const post = (who: SignedUpUser, conversationId: string, content: string, extra = {}) =>
      server.api("POST", "/api/messages", {
        token: who.accessToken,
        body: { conversation_id: conversationId, content, ...extra },
      })
    // Sent at once, so they share send batches: each answer must be the one its own request deserves.
    const answers = await Promise.all([
      post(u!, id, "u1"),
      post(outsider!, id, "not a member"),
      post(v!, id, "v1", { client_message_id: "burst-new" }),
      post(u!, id, "again", { client_message_id: "burst-old" }),
      post(outsider!, "no-such-conversation", "nowhere"),
      post(v!, id, "v1 again", { client_message_id: "burst-new" }),
      post(u!, id, "u2 \ud83d"),
    ])
    expect(answers.map((a) => a.status)).toEqual([200, 403, 200, 200, 404, 200, 200])
    expect(answers[1]!.body.code).toBe("conversation.not_member")
    expect(answers[3]!.body.id).toBe(stored.id)
    expect(answers[3]!.body.content).toBe("stored before")
    expect(answers[5]!.body.id).toBe(answers[2]!.body.id)
    const all = await history(server, u!, id)
    expect(all.map((m) => m.seq)).toEqual([1, 2, 3, 4])
    // A lone surrogate (valid in a JSON string, not in UTF-8) is stored as U+FFFD.
    expect(all.map((m) => m.content).sort()).toEqual(["stored before", "u1", "u2 \ufffd", "v1"])
    // Each sender's read watermark is their newest message: only what came after it is unread.
    for (const who of [u!, v!]) {
      const own = Math.max(...all.filter((m) => m.sender_id === who.user.id).map((m) => m.seq))
      const state = await server.api("GET", `/api/conversations/${id}`, { token: who.accessToken })
      expect(state.body.unread_count).toBe(4 - own)
    }
  })

  test("message:received is announced with both cases, type, replyTo and a cursor", async () => {
    const original = await send(server, bob, chat, "ping")
    const m = await send(server, alice, chat, "pong", { reply_to_id: original.id })
    const event = eventsNamed("message:received").find((e) => e.data.id === m.id)!
    expect(event.conversationId).toBe(chat)
    expect(event.cursor).toMatch(/^v1\./)
    expect(event.data).toMatchObject({
      id: m.id,
      conversationId: chat,
      conversation_id: chat,
      senderId: alice.user.id,
      sender_id: alice.user.id,
      senderName: "User 1",
      messageType: "TEXT",
      message_type: "TEXT",
      type: "TEXT",
      replyTo: { id: original.id, senderName: "User 2", content: "ping" },
      reply_to: { id: original.id, sender_name: "User 2", content: "ping" },
    })
  })

  test("refusals: not a member 403, unknown conversation 404, bad body 422", async () => {
    const res = await server.api("POST", "/api/messages", {
      token: carol.accessToken,
      body: { conversation_id: chat, content: "let me in" },
    })
    expect(res.status).toBe(403)
    expect(res.body.code).toBe("conversation.not_member")
    const unknown = await server.api("POST", "/api/messages", {
      token: carol.accessToken,
      body: { conversation_id: "nope", content: "x" },
    })
    expect(unknown.status).toBe(404)
    const bad = await server.api("POST", "/api/messages", {
      token: alice.accessToken,
      body: { content: "x" },
    })
    expect(bad.status).toBe(422)
    expect(bad.body.detail[0].msg).toBeString()
    const guest = await server.api("POST", "/api/messages", { body: { conversation_id: chat, content: "x" } })
    expect(guest.status).toBe(401)
  })
})

describe("history", () => {
  test("limit + before pages backwards, after / since_seq forwards; ascending within a page", async () => {
    const [u, v] = await signUpMany(server, 2, "Hist")
    const id = await directChat(server, u!, v!)
    for (let i = 1; i <= 7; i++) await send(server, u!, id, `h${i}`)
    const get = async (query: string) =>
      (await server.api("GET", `/api/conversations/${id}/messages?${query}`, { token: v!.accessToken })).body
    const newest = await get("limit=3")
    expect(newest.messages.map((m: any) => m.content)).toEqual(["h5", "h6", "h7"])
    expect(newest).toMatchObject({ has_more: true, limit: 3, total: 3 })
    const older = await get(`limit=3&before=${newest.messages[0].id}`)
    expect(older.messages.map((m: any) => m.content)).toEqual(["h2", "h3", "h4"])
    const oldest = await get(`limit=3&before=${older.messages[0].id}`)
    expect(oldest.messages.map((m: any) => m.content)).toEqual(["h1"])
    expect(oldest.has_more).toBe(false)
    const forward = await get(`limit=2&after=${oldest.messages[0].id}`)
    expect(forward.messages.map((m: any) => m.content)).toEqual(["h2", "h3"])
    expect((await get("limit=100&since_seq=5")).messages.map((m: any) => m.content)).toEqual(["h6", "h7"])
    expect(
      (await server.api("GET", `/api/conversations/${id}/messages?before=temp-1`, { token: v!.accessToken }))
        .status,
    ).toBe(404)
    expect(
      (await server.api("GET", `/api/conversations/${id}/messages?limit=0`, { token: v!.accessToken }))
        .status,
    ).toBe(422)
  })
})

describe("edit, delete, forward, star", () => {
  test("only the sender edits; the edit is marked and announced", async () => {
    const m = await send(server, alice, chat, "tpyo")
    const denied = await server.api("PUT", `/api/messages/${m.id}`, {
      token: bob.accessToken,
      body: { content: "x" },
    })
    expect(denied.status).toBe(403)
    const edited = await server.api("PUT", `/api/messages/${m.id}`, {
      token: alice.accessToken,
      body: { content: "typo" },
    })
    expect(edited.status).toBe(200)
    expect(edited.body).toMatchObject({ id: m.id, content: "typo", is_edited: true })
    expect(eventsNamed("message:updated").find((e) => e.data.id === m.id)?.data).toMatchObject({
      content: "typo",
      isEdited: true,
    })
    const outsider = await server.api("PUT", `/api/messages/${m.id}`, {
      token: carol.accessToken,
      body: { content: "x" },
    })
    expect(outsider.status).toBe(404)
  })

  test("the sender deletes for everyone; anyone else hides it for themselves", async () => {
    const mine = await send(server, alice, chat, "delete me")
    const theirs = await send(server, alice, chat, "hide me")
    const del = await server.api("DELETE", `/api/messages/${mine.id}`, { token: alice.accessToken })
    expect(del.body).toMatchObject({ success: true, scope: "everyone" })
    const hide = await server.api("DELETE", `/api/messages/${theirs.id}`, { token: bob.accessToken })
    expect(hide.body).toMatchObject({ success: true, scope: "me" })
    const forBob = (await history(server, bob, chat)).map((m) => m.id)
    const forAlice = (await history(server, alice, chat)).map((m) => m.id)
    expect(forBob).not.toContain(mine.id)
    expect(forAlice).not.toContain(mine.id)
    expect(forBob).not.toContain(theirs.id)
    expect(forAlice).toContain(theirs.id)
    const deleted = eventsNamed("message:deleted")
    expect(deleted.find((e) => e.data.id === mine.id)?.userIds).toBeUndefined()
    expect(deleted.find((e) => e.data.id === theirs.id)?.userIds).toEqual([bob.user.id])
    // Gone is gone: deleting or editing again is 404.
    expect(
      (await server.api("DELETE", `/api/messages/${mine.id}`, { token: alice.accessToken })).status,
    ).toBe(404)
    expect(
      (await server.api("DELETE", `/api/messages/${theirs.id}`, { token: bob.accessToken })).status,
    ).toBe(404)
    // The list's last message skips a deleted one.
    const last = await send(server, bob, chat, "keep")
    await send(server, alice, chat, "oops")
    const oops = (await history(server, alice, chat)).at(-1)
    await server.api("DELETE", `/api/messages/${oops.id}`, { token: alice.accessToken })
    const item = (
      await server.api("GET", "/api/conversations", { token: bob.accessToken })
    ).body.conversations.find((c: any) => c.id === chat)
    expect(item.lastMessage.id).toBe(last.id)
    // A non-sender cannot force a delete for everyone.
    const forced = await server.api("DELETE", `/api/messages/${last.id}?scope=everyone`, {
      token: alice.accessToken,
    })
    expect(forced.status).toBe(403)
  })

  test("in a group, FOUNDER and MODERATOR delete anyone's message for everyone; a MEMBER only hides", async () => {
    const [f, m1, m2] = await signUpMany(server, 3, "Grp")
    const g = await group(server, f!, [m1!, m2!])
    const a = await send(server, m1!, g, "by m1")
    const b = await send(server, m1!, g, "by m1 again")
    expect((await server.api("DELETE", `/api/messages/${a.id}`, { token: m2!.accessToken })).body.scope).toBe(
      "me",
    )
    expect((await server.api("DELETE", `/api/messages/${b.id}`, { token: f!.accessToken })).body.scope).toBe(
      "everyone",
    )
    expect((await history(server, m1!, g)).map((m) => m.id)).toEqual([a.id])
  })

  test("forward copies visible messages into the caller's conversations only", async () => {
    const src = await send(server, bob, chat, "worth sharing", {
      message_type: "IMAGE",
      media_url: "https://cdn/x.jpg",
    })
    const target = await directChat(server, alice, carol)
    const res = await server.api("POST", "/api/messages/forward", {
      token: alice.accessToken,
      body: { message_ids: [src.id, "temp-123"], conversation_id: target },
    })
    expect(res.status).toBe(200)
    expect(res.body).toMatchObject({ success: true, forwarded_count: 1 })
    const copy = (await history(server, carol, target)).at(-1)
    expect(copy).toMatchObject({
      content: "worth sharing",
      is_forwarded: true,
      sender_id: alice.user.id,
      message_type: "IMAGE",
    })
    // Not a member of the target: 403; a source the caller cannot see is skipped.
    const [z] = await signUpMany(server, 1, "Zed")
    const intoForeign = await server.api("POST", "/api/messages/forward", {
      token: z!.accessToken,
      body: { message_ids: [src.id], conversation_id: chat },
    })
    expect(intoForeign.status).toBe(403)
    const zChat = await directChat(server, z!, carol)
    const foreignSource = await server.api("POST", "/api/messages/forward", {
      token: z!.accessToken,
      body: { message_ids: [src.id], conversation_id: zChat },
    })
    expect(foreignSource.body.forwarded_count).toBe(0)
  })

  test("stars are per user; the starred list holds what the user can still see", async () => {
    const m = await send(server, bob, chat, "star me")
    expect(
      (await server.api("POST", `/api/messages/${m.id}/star`, { token: alice.accessToken, body: {} })).status,
    ).toBe(200)
    expect(
      (await server.api("POST", `/api/messages/${m.id}/star`, { token: alice.accessToken, body: {} })).status,
    ).toBe(200)
    const starred = await server.api("GET", "/api/messages/starred", { token: alice.accessToken })
    expect(starred.body.messages.map((x: any) => x.id)).toEqual([m.id])
    expect(starred.body.messages[0].is_starred).toBe(true)
    expect(starred.body).toMatchObject({ total: 1, has_more: false })
    expect(
      (await server.api("GET", "/api/messages/starred", { token: bob.accessToken })).body.messages,
    ).toEqual([])
    expect(
      (await server.api("POST", `/api/messages/${m.id}/star`, { token: carol.accessToken, body: {} })).status,
    ).toBe(404)
    expect(
      (await server.api("DELETE", `/api/messages/${m.id}/star`, { token: alice.accessToken })).status,
    ).toBe(200)
    expect(
      (await server.api("GET", "/api/messages/starred", { token: alice.accessToken })).body.messages,
    ).toEqual([])
  })
})

describe("receipts", () => {
  test("read and delivered are watermarks; status follows them; events per covered message", async () => {
    const [u, v] = await signUpMany(server, 2, "Rcpt")
    const id = await directChat(server, u!, v!)
    const a = await send(server, u!, id, "one")
    const b = await send(server, u!, id, "two")
    const delivered = await server.api("PUT", `/api/messages/${a.id}/status`, {
      token: v!.accessToken,
      body: { status: "DELIVERED" },
    })
    expect(delivered.status).toBe(200)
    let mine = await history(server, u!, id)
    expect(mine.map((m) => m.status)).toEqual(["DELIVERED", "SENT"])
    expect(eventsNamed("message:delivered").some((e) => e.data.messageId === a.id)).toBe(true)
    const read = await server.api("POST", "/api/messages/read", {
      token: v!.accessToken,
      body: { message_ids: [b.id, "temp-9"] },
    })
    expect(read.body).toEqual({ success: true, updated: 1 })
    mine = await history(server, u!, id)
    expect(mine.map((m) => m.status)).toEqual(["READ", "READ"])
    const readEvents = eventsNamed("message:read").filter((e) => e.conversationId === id)
    expect(readEvents.map((e) => e.data.messageId)).toEqual([a.id, b.id])
    expect(readEvents[0]!.data).toMatchObject({ userId: v!.user.id, user_id: v!.user.id, conversationId: id })
    // Watermarks never move back.
    await server.api("PUT", `/api/messages/${a.id}/status`, {
      token: v!.accessToken,
      body: { status: "READ" },
    })
    expect((await history(server, u!, id)).map((m) => m.status)).toEqual(["READ", "READ"])
    expect(
      (await server.api("PUT", `/api/conversations/${id}/read`, { token: carol.accessToken, body: {} }))
        .status,
    ).toBe(404)
  })
})

describe("read receipts privacy", () => {
  test("a reader with read receipts off is seen as delivered, never read; their unread count still clears", async () => {
    const [u, v] = await signUpMany(server, 2, "Priv")
    const id = await directChat(server, u!, v!)
    await send(server, u!, id, "are you reading this?")
    const off = await server.api("PUT", "/api/settings/privacy?show_read_receipts=false", {
      token: v!.accessToken,
    })
    expect(off.status).toBe(200)
    await server.api("PUT", `/api/conversations/${id}/read`, { token: v!.accessToken, body: {} })
    expect((await history(server, u!, id)).map((m) => m.status)).toEqual(["DELIVERED"])
    const vList = await server.api("GET", "/api/conversations", { token: v!.accessToken })
    expect(vList.body.conversations.find((c: any) => c.id === id).unreadCount).toBe(0)
    await server.api("PUT", "/api/settings/privacy?show_read_receipts=true", { token: v!.accessToken })
    expect((await history(server, u!, id)).map((m) => m.status)).toEqual(["READ"])
  })
})

describe("search", () => {
  test("newest first, in the caller's conversations only, both parameter names, paginated", async () => {
    const [u, v, w] = await signUpMany(server, 3, "Find")
    const uv = await directChat(server, u!, v!)
    const uw = await directChat(server, u!, w!)
    const vw = await directChat(server, v!, w!)
    await send(server, u!, uv, "Pineapple pizza tonight?")
    await send(server, w!, uw, "pineapples are great")
    await send(server, v!, vw, "secret pineapple plan")
    await send(server, u!, uv, "no pizza for me")
    const search = async (user: SignedUpUser, query: string) =>
      (await server.api("GET", `/api/messages/search?${query}`, { token: user.accessToken })).body
    const all = await search(u!, "q=pineapple")
    expect(all.messages.map((m: any) => m.content)).toEqual([
      "pineapples are great",
      "Pineapple pizza tonight?",
    ])
    expect(
      (await search(u!, `q=pineapple&conversationId=${uv}`)).messages.map((m: any) => m.content),
    ).toEqual(["Pineapple pizza tonight?"])
    expect(
      (await search(u!, `q=pineapple&conversation_id=${uw}`)).messages.map((m: any) => m.content),
    ).toEqual(["pineapples are great"])
    expect((await search(u!, "q=PIZZA tonight")).messages.map((m: any) => m.content)).toEqual([
      "Pineapple pizza tonight?",
    ])
    expect((await search(u!, "q=secret")).messages).toEqual([])
    const foreign = await server.api("GET", `/api/messages/search?q=pineapple&conversationId=${vw}`, {
      token: u!.accessToken,
    })
    expect(foreign.status).toBe(403)
    // Pages by cursor.
    const p1 = await search(u!, "q=pi&limit=2")
    expect(p1.messages.map((m: any) => m.content)).toEqual(["no pizza for me", "pineapples are great"])
    expect(p1.has_more).toBe(true)
    const p2 = await search(u!, `q=pi&limit=2&cursor=${p1.next_cursor}`)
    expect(p2.messages.map((m: any) => m.content)).toEqual(["Pineapple pizza tonight?"])
    expect(p2.has_more).toBe(false)
    expect((await server.api("GET", "/api/messages/search?q=", { token: u!.accessToken })).status).toBe(422)
    expect(
      (await server.api("GET", "/api/messages/search?q=x&cursor=garbage", { token: u!.accessToken })).status,
    ).toBe(400)
  })

  test("finds the caller's older matches behind many newer ones in conversations they are not in", async () => {
    const [u, v, w] = await signUpMany(server, 3, "Deep")
    const uv = await directChat(server, u!, v!)
    const vw = await directChat(server, v!, w!)
    await send(server, u!, uv, "walrus one")
    await send(server, v!, uv, "walrus two")
    for (let i = 0; i < 60; i++) await send(server, v!, vw, `walrus elsewhere ${i}`)
    await send(server, v!, uv, "walrus three")
    const search = async (query: string) =>
      (await server.api("GET", `/api/messages/search?${query}`, { token: u!.accessToken })).body
    const p1 = await search("q=walrus&limit=2")
    expect(p1.messages.map((m: any) => m.content)).toEqual(["walrus three", "walrus two"])
    expect(p1.has_more).toBe(true)
    const p2 = await search(`q=walrus&limit=2&cursor=${p1.next_cursor}`)
    expect(p2.messages.map((m: any) => m.content)).toEqual(["walrus one"])
    expect(p2.has_more).toBe(false)
    expect((await search("q=walrus elsewhere")).messages).toEqual([])
  })

  test("finds the newest match in the caller's least recently active conversation behind many in others", async () => {
    const [u, ...others] = await signUpMany(server, 19, "Heron")
    const chats: string[] = []
    for (const o of others.slice(0, 17)) chats.push(await directChat(server, u!, o!))
    // Two older matches in each of 16 chats, the newest match in the 17th; then the 16 chats are active again.
    for (let i = 0; i < 16; i++) {
      await send(server, others[i]!, chats[i]!, `heron a${i}`)
      await send(server, others[i]!, chats[i]!, `heron b${i}`)
    }
    await send(server, others[16]!, chats[16]!, "heron newest")
    for (let i = 16; i >= 0; i--) await send(server, u!, chats[i]!, "chatter")
    // Newer matches than all of them in a conversation the caller is not in (the scan finds none of theirs).
    const elsewhere = await directChat(server, others[0]!, others[17]!)
    for (let i = 0; i < 520; i++) await send(server, others[17]!, elsewhere, `heron elsewhere ${i}`)
    const page = (await server.api("GET", "/api/messages/search?q=heron&limit=5", { token: u!.accessToken }))
      .body
    expect(page.messages.map((m: any) => m.content)).toEqual([
      "heron newest",
      "heron b15",
      "heron a15",
      "heron b14",
      "heron a14",
    ])
  })

  test("never returns deleted, hidden or cleared messages, nor edited-away words", async () => {
    const [u, v] = await signUpMany(server, 2, "Gone")
    const id = await directChat(server, u!, v!)
    const deleted = await send(server, v!, id, "zebra deleted")
    const hidden = await send(server, v!, id, "zebra hidden")
    const edited = await send(server, v!, id, "zebra typo")
    await server.api("DELETE", `/api/messages/${deleted.id}`, { token: v!.accessToken })
    await server.api("DELETE", `/api/messages/${hidden.id}`, { token: u!.accessToken })
    await server.api("PUT", `/api/messages/${edited.id}`, {
      token: v!.accessToken,
      body: { content: "giraffe" },
    })
    const q = async (user: SignedUpUser, word: string) =>
      (
        await server.api("GET", `/api/messages/search?q=${word}`, { token: user.accessToken })
      ).body.messages.map((m: any) => m.content)
    expect(await q(u!, "zebra")).toEqual([])
    expect(await q(v!, "zebra")).toEqual(["zebra hidden"])
    expect(await q(u!, "giraffe")).toEqual(["giraffe"])
    await send(server, v!, id, "zebra after")
    await server.api("DELETE", `/api/conversations/${id}/clear`, { token: v!.accessToken })
    expect(await q(v!, "zebra")).toEqual([])
    expect(await q(u!, "zebra")).toEqual(["zebra after"])

    // A deleted group takes its messages with it, indexed or not yet; search still answers.
    const g = await group(server, u!, [v!])
    await send(server, u!, g, "zebra in a group")
    await send(server, v!, id, "zebra last")
    expect((await server.api("DELETE", `/api/groups/${g}`, { token: u!.accessToken })).status).toBe(200)
    expect(await q(u!, "zebra")).toEqual(["zebra last", "zebra after"])
  })

  test("answers the same once the index is merged while the server is idle", async () => {
    const [u, v] = await signUpMany(server, 2, "Merge")
    const id = await directChat(server, u!, v!)
    const sent: { id: string }[] = []
    // Each search first indexes what is pending: on SQLite every round below is an index segment of its own.
    for (let i = 0; i < 12; i++) {
      sent.push(await send(server, i % 2 ? u! : v!, id, `otter round ${i} ${i % 3 ? "kelp" : "clam"}`))
      await server.api("GET", "/api/messages/search?q=otter", { token: u!.accessToken })
    }
    const q = async (query: string) =>
      (await server.api("GET", `/api/messages/search?${query}`, { token: u!.accessToken })).body
    const pages = async () => {
      const p1 = await q("q=otter&limit=5")
      const p2 = await q(`q=otter&limit=5&cursor=${p1.next_cursor}`)
      const words = await q("q=otter ke")
      return [p1, p2, words].map((p) => p.messages.map((m: any) => m.content))
    }
    const before = await pages()
    expect(before[0]).toHaveLength(5)
    expect(before[2]).toHaveLength(8)
    const segments = server.deps.searchIndex.segments()
    if (server.deps.database.dialect === "sqlite") {
      // The merger runs once the indexer has been idle a second (search.indexer.ts).
      await waitFor(() => server.deps.searchIndex.segments() < segments, 15_000, "the idle merge")
    }
    expect(await pages()).toEqual(before)
    // Deletes and edits still apply on the merged index.
    await server.api("DELETE", `/api/messages/${sent[11]!.id}`, { token: u!.accessToken })
    await server.api("PUT", `/api/messages/${sent[10]!.id}`, {
      token: v!.accessToken,
      body: { content: "seal" },
    })
    expect((await q("q=otter&limit=2")).messages.map((m: any) => m.content)).toEqual([
      "otter round 9 clam",
      "otter round 8 kelp",
    ])
  })

  test("edits and deletes apply to search in the order they happened, indexed or not yet", async () => {
    const [u, v] = await signUpMany(server, 2, "Order")
    const id = await directChat(server, u!, v!)
    const q = async (word: string) =>
      (
        await server.api("GET", `/api/messages/search?q=${word}`, { token: v!.accessToken })
      ).body.messages.map((x: any) => x.content)
    const edit = (m: { id: string }, content: string) =>
      server.api("PUT", `/api/messages/${m.id}`, { token: u!.accessToken, body: { content } })
    // Edited twice before any search.
    const early = await send(server, u!, id, "okapi first")
    await edit(early, "okapi second")
    await edit(early, "quokka third")
    // Searched (so indexed) first, edited after.
    const late = await send(server, u!, id, "ibis before")
    expect(await q("ibis")).toEqual(["ibis before"])
    await edit(late, "heron after")
    expect(await q("first")).toEqual([])
    expect(await q("okapi")).toEqual([])
    expect(await q("quokka")).toEqual(["quokka third"])
    expect(await q("ibis")).toEqual([])
    expect(await q("heron")).toEqual(["heron after"])
    await server.api("DELETE", `/api/messages/${late.id}`, { token: u!.accessToken })
    expect(await q("heron")).toEqual([])
  })
})
