import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { connected, connectNative, socketIoClient } from "./helpers/realtime.ts"
import { type TestServer, startTestServer } from "./helpers/server.ts"
import { type SignedUpUser, signUp } from "./helpers/users.ts"
import { waitFor } from "./helpers/wait.ts"

let server: TestServer
beforeAll(async () => {
  server = await startTestServer({
    config: { "realtime.presence_grace": "50ms", "realtime.typing_timeout": "300ms" },
  })
})
afterAll(() => server.stop())

const createGroup = async (owner: SignedUpUser, others: SignedUpUser[], name = "Group") => {
  const res = await server.api("POST", "/api/conversations", {
    token: owner.accessToken,
    body: { type: "GROUP", name, participant_ids: others.map((u) => u.user.id) },
  })
  expect(res.status).toBeLessThan(300)
  return res.body.id as string
}
const createDirect = async (a: SignedUpUser, b: SignedUpUser) => {
  const res = await server.api("POST", "/api/conversations", {
    token: a.accessToken,
    body: { type: "DIRECT", participant_ids: [b.user.id] },
  })
  expect(res.status).toBeLessThan(300)
  return res.body.id as string
}
const sendRest = async (from: SignedUpUser, conversationId: string, content: string, extra: object = {}) => {
  const res = await server.api("POST", "/api/messages", {
    token: from.accessToken,
    body: { conversation_id: conversationId, content, message_type: "TEXT", ...extra },
  })
  expect(res.status).toBeLessThan(300)
  return res.body
}
describe("fanout by membership", () => {
  test("a REST send reaches every socket of every member on both protocols, with the app's payload shapes", async () => {
    const [alice, bob, carol] = await Promise.all([signUp(server), signUp(server), signUp(server)])
    const groupId = await createGroup(alice, [bob, carol])
    const bobNative = await connectNative(server, { token: bob.accessToken })
    await bobNative.next("hello")
    const bobApp = socketIoClient(server, bob.accessToken)
    const carolApp = socketIoClient(server, carol.accessToken, ["polling"])
    await Promise.all([connected(bobApp), connected(carolApp)])

    const reply = await sendRest(alice, groupId, "first")
    const sent = await sendRest(alice, groupId, "hello group", { reply_to_id: reply.id })
    const frame = await bobNative.next("message:received", (f) => f.data.id === sent.id)
    expect(typeof frame.cursor).toBe("string")
    expect(frame.data).toMatchObject({ id: sent.id, content: "hello group" })
    for (const client of [bobApp, carolApp]) {
      const [payload] = await client.next("message:received", ([m]) => m.id === sent.id)
      // CONTRACT §3: both cases, `type`, and a reply_to/replyTo object.
      expect(payload).toMatchObject({
        id: sent.id,
        conversationId: groupId,
        conversation_id: groupId,
        senderId: alice.user.id,
        sender_id: alice.user.id,
        type: "TEXT",
        content: "hello group",
      })
      expect(payload.reply_to ?? payload.replyTo).toMatchObject({ id: reply.id })
    }
    for (const c of [bobApp, carolApp]) c.close()
    bobNative.close()
  })

  test("a Socket.IO client that starts on polling and upgrades to websocket gets each event once", async () => {
    const [alice, bob] = await Promise.all([signUp(server), signUp(server)])
    const chat = await createDirect(alice, bob)
    const bobApp = socketIoClient(server, bob.accessToken, ["polling", "websocket"])
    await connected(bobApp)
    const before = await sendRest(alice, chat, "while polling")
    await bobApp.next("message:received", ([m]) => m.id === before.id)
    await waitFor(() => bobApp.socket.io.engine.transport.name === "websocket")
    const after = await sendRest(alice, chat, "after the upgrade")
    const last = await sendRest(alice, chat, "and one more")
    await bobApp.next("message:received", ([m]) => m.id === last.id)
    const ids = bobApp.events.filter((e) => e.name === "message:received").map((e) => e.args[0].id)
    expect(ids).toEqual([before.id, after.id, last.id])
    bobApp.close()
  })

  test("a conversation created after the socket connected is delivered; non-members get nothing", async () => {
    const [alice, bob, eve] = await Promise.all([signUp(server), signUp(server), signUp(server)])
    const bobApp = socketIoClient(server, bob.accessToken)
    const eveNative = await connectNative(server, { token: eve.accessToken })
    await connected(bobApp)
    await eveNative.next("hello")
    const directId = await createDirect(alice, bob)
    const sent = await sendRest(alice, directId, "new chat")
    const [payload] = await bobApp.next("message:received", ([m]) => m.id === sent.id)
    expect(payload.content).toBe("new chat")
    // A group too (groups reach sockets through topics, direct chats one by one: both follow new memberships).
    const groupId = await createGroup(alice, [bob], "new group")
    const inGroup = await sendRest(alice, groupId, "new group message")
    await bobApp.next("message:received", ([m]) => m.id === inGroup.id)

    // Eve shares nothing with Alice: a sentinel to Eve's own chat arrives, Alice's message never does.
    const eveChat = await createDirect(eve, bob)
    const marker = await sendRest(bob, eveChat, "to eve")
    await eveNative.next("message:received", (f) => f.data.id === marker.id)
    expect(eveNative.frames.some((f) => f.data?.id === sent.id)).toBe(false)
    bobApp.close()
    eveNative.close()
  })

  test("a member who leaves stops receiving at once", async () => {
    const [alice, bob, carol] = await Promise.all([signUp(server), signUp(server), signUp(server)])
    const groupId = await createGroup(alice, [bob, carol])
    const carolNative = await connectNative(server, { token: carol.accessToken })
    await carolNative.next("hello")
    const before = await sendRest(alice, groupId, "before leaving")
    await carolNative.next("message:received", (f) => f.data.id === before.id)

    const left = await server.api("DELETE", `/api/conversations/${groupId}`, { token: carol.accessToken })
    expect(left.status).toBeLessThan(300)
    const after = await sendRest(alice, groupId, "after leaving")
    // Carol still hears from a conversation she is in: that proves the group's message would have arrived.
    const other = await createDirect(alice, carol)
    const marker = await sendRest(alice, other, "still here")
    await carolNative.next("message:received", (f) => f.data.id === marker.id)
    expect(carolNative.frames.some((f) => f.data?.id === after.id)).toBe(false)
    const join = await carolNative.request("join:conversation", { conversation_id: groupId })
    expect(join).toMatchObject({ event: "error", data: { code: "conversation.not_member" } })
    carolNative.close()
  })
})

describe("typing", () => {
  test("goes to the other members, not back to the typist, and stops by itself", async () => {
    const [alice, bob] = await Promise.all([signUp(server), signUp(server)])
    const chat = await createDirect(alice, bob)
    const aliceNative = await connectNative(server, { token: alice.accessToken })
    const bobApp = socketIoClient(server, bob.accessToken)
    await aliceNative.next("hello")
    await connected(bobApp)
    expect(await aliceNative.request("typing:start", { conversation_id: chat })).toMatchObject({
      event: "ack",
    })
    const [start] = await bobApp.next("typing:start")
    expect(start).toMatchObject({ userId: alice.user.id, conversationId: chat })
    // No typing:stop was sent: the server stops it after realtime.typing_timeout.
    const [stop] = await bobApp.next("typing:stop")
    expect(stop).toMatchObject({ userId: alice.user.id, conversationId: chat })
    expect(aliceNative.frames.some((f) => f.event.startsWith("typing:"))).toBe(false)

    // The app's own shape: {conversationId}, no ack.
    bobApp.socket.emit("typing:start", { conversationId: chat })
    await aliceNative.next("typing:start", (f) => f.data.user_id === bob.user.id)
    bobApp.socket.emit("typing:stop", { conversationId: chat })
    await aliceNative.next("typing:stop", (f) => f.data.user_id === bob.user.id)
    bobApp.close()
    aliceNative.close()
  })

  test("a non-member cannot type into a conversation", async () => {
    const [alice, bob, eve] = await Promise.all([signUp(server), signUp(server), signUp(server)])
    const chat = await createDirect(alice, bob)
    const eveNative = await connectNative(server, { token: eve.accessToken })
    await eveNative.next("hello")
    const refused = await eveNative.request("typing:start", { conversation_id: chat })
    expect(refused).toMatchObject({ event: "error", data: { code: "conversation.not_member", status: 403 } })
    eveNative.close()
  })
})

describe("presence", () => {
  test("online on the first socket, offline with last_seen after the last one closes, only to users who share a conversation", async () => {
    const [alice, bob, stranger] = await Promise.all([signUp(server), signUp(server), signUp(server)])
    await createDirect(alice, bob)
    const bobApp = socketIoClient(server, bob.accessToken)
    const bobNative = await connectNative(server, { token: bob.accessToken })
    const strangerNative = await connectNative(server, { token: stranger.accessToken })
    await connected(bobApp)

    const first = await connectNative(server, { token: alice.accessToken })
    const second = socketIoClient(server, alice.accessToken)
    await connected(second)
    const [online] = await bobApp.next("user:online", ([id]) => id === alice.user.id)
    expect(online).toBe(alice.user.id) // bare id on Socket.IO
    const frame = await bobNative.next("user:online", (f) => f.data.user_id === alice.user.id)
    expect(frame.data).toEqual({ user_id: alice.user.id, userId: alice.user.id })
    expect(server.deps.presence.isOnline(alice.user.id)).toBe(true)

    first.close()
    second.close()
    const [offline] = await bobApp.next("user:offline", ([id]) => id === alice.user.id)
    expect(offline).toBe(alice.user.id)
    const off = await bobNative.next("user:offline", (f) => f.data.user_id === alice.user.id)
    expect(off.data.last_seen).toMatch(/Z$/)
    expect(bobApp.events.filter((e) => e.name === "user:online" && e.args[0] === alice.user.id)).toHaveLength(
      1,
    )
    const row = await server.deps.database.db
      .selectFrom("users")
      .select("last_seen")
      .where("id", "=", alice.user.id)
      .executeTakeFirstOrThrow()
    expect(row.last_seen).toBe(Date.parse(off.data.last_seen))
    expect(strangerNative.frames.some((f) => f.event.startsWith("user:"))).toBe(false)
    for (const c of [bobNative, strangerNative]) c.close()
    bobApp.close()
  })

  test("a quick reconnect within the grace never shows the user offline", async () => {
    const own = await startTestServer({ config: { "realtime.presence_grace": "5s" } })
    try {
      const [alice, bob] = await Promise.all([signUp(own), signUp(own)])
      await own.api("POST", "/api/conversations", {
        token: alice.accessToken,
        body: { type: "DIRECT", participant_ids: [bob.user.id] },
      })
      const bobNative = await connectNative(own, { token: bob.accessToken })
      const a1 = await connectNative(own, { token: alice.accessToken })
      await bobNative.next("user:online")
      a1.close()
      await a1.closed
      const a2 = await connectNative(own, { token: alice.accessToken })
      await a2.next("hello")
      expect(own.deps.presence.isOnline(alice.user.id)).toBe(true)
      a2.close()
      bobNative.close()
      expect(bobNative.frames.filter((f) => f.event === "user:offline")).toHaveLength(0)
    } finally {
      await own.stop()
    }
  })
})

describe("client events through messaging", () => {
  test("message:sent persists once per client id, acks with the stored message, and reaches the others (not the sending socket)", async () => {
    const [alice, bob] = await Promise.all([signUp(server), signUp(server)])
    const chat = await createDirect(alice, bob)
    const aliceNative = await connectNative(server, { token: alice.accessToken })
    const aliceOther = await connectNative(server, { token: alice.accessToken })
    const bobApp = socketIoClient(server, bob.accessToken)
    await Promise.all([aliceNative.next("hello"), aliceOther.next("hello"), connected(bobApp)])

    const clientId = crypto.randomUUID()
    const body = { conversation_id: chat, content: "over the socket", client_message_id: clientId }
    const ack = await aliceNative.request("message:sent", body)
    expect(ack).toMatchObject({ event: "ack", data: { content: "over the socket", conversation_id: chat } })
    const retry = await aliceNative.request("message:sent", body)
    expect(retry.data.id).toBe(ack.data.id)

    const [received] = await bobApp.next("message:received", ([m]) => m.id === ack.data.id)
    expect(received).toMatchObject({ content: "over the socket", senderId: alice.user.id, type: "TEXT" })
    // Alice's other device hears it; the sending socket does not get its own echo.
    await aliceOther.next("message:received", (f) => f.data.id === ack.data.id)
    expect(aliceNative.frames.some((f) => f.event === "message:received")).toBe(false)
    const history = await server.api("GET", `/api/conversations/${chat}/messages`, { token: bob.accessToken })
    expect(history.body.messages.filter((m: any) => m.id === ack.data.id)).toHaveLength(1)
    for (const c of [aliceNative, aliceOther]) c.close()
    bobApp.close()
  })

  test("the app's Message object over Socket.IO: temp id as the idempotency key, replyTo object, camelCase", async () => {
    const [alice, bob] = await Promise.all([signUp(server), signUp(server)])
    const chat = await createDirect(alice, bob)
    const first = await sendRest(bob, chat, "question")
    const aliceApp = socketIoClient(server, alice.accessToken)
    const aliceTablet = socketIoClient(server, alice.accessToken)
    const bobNative = await connectNative(server, { token: bob.accessToken })
    await Promise.all([connected(aliceApp), connected(aliceTablet), bobNative.next("hello")])
    const optimistic = {
      id: `temp-${Date.now()}`,
      conversationId: chat,
      senderId: alice.user.id,
      content: "answer",
      type: "TEXT",
      status: "SENDING",
      replyTo: { id: first.id, senderName: "Bob", content: "question" },
      createdAt: new Date().toISOString(),
    }
    const ack = await aliceApp.request("message:sent", optimistic)
    expect(ack).toMatchObject({ ok: true, data: { content: "answer" } })
    expect(ack.data.reply_to).toMatchObject({ id: first.id })
    const again = await aliceApp.request("message:sent", optimistic)
    expect(again.data.id).toBe(ack.data.id)
    const frame = await bobNative.next("message:received", (f) => f.data.id === ack.data.id)
    expect(frame.data.replyTo).toMatchObject({ id: first.id })
    // Alice's other Socket.IO socket hears it; the sending one gets no echo.
    await aliceTablet.next("message:received", ([m]) => m.id === ack.data.id)
    expect(aliceApp.events.some((e) => e.name === "message:received")).toBe(false)

    const refused = await aliceApp.request("message:sent", {
      conversationId: crypto.randomUUID(),
      content: "x",
    })
    expect(refused.ok).toBe(false)
    expect([403, 404]).toContain(refused.error.status)
    aliceApp.close()
    aliceTablet.close()
    bobNative.close()
  })

  test("message:delivered and message:read from the recipient move the watermarks and tell the sender (bare id on Socket.IO)", async () => {
    const [alice, bob] = await Promise.all([signUp(server), signUp(server)])
    const chat = await createDirect(alice, bob)
    const aliceApp = socketIoClient(server, alice.accessToken)
    const bobApp = socketIoClient(server, bob.accessToken)
    await Promise.all([connected(aliceApp), connected(bobApp)])
    const sent = await sendRest(alice, chat, "did you get this?")
    await bobApp.next("message:received", ([m]) => m.id === sent.id)

    bobApp.socket.emit("message:delivered", sent.id) // the app's shape: a bare id
    const [delivered] = await aliceApp.next("message:delivered", ([id]) => id === sent.id)
    expect(delivered).toBe(sent.id)
    bobApp.socket.emit("message:read", { messageId: sent.id, conversationId: chat })
    const [read] = await aliceApp.next("message:read", ([r]) => r.messageId === sent.id)
    expect(read).toMatchObject({ messageId: sent.id, userId: bob.user.id, conversationId: chat })

    const state = await server.api("GET", `/api/conversations/${chat}`, { token: bob.accessToken })
    expect(state.body.unread_count ?? state.body.unreadCount).toBe(0)
    const unknown = await bobApp.request("message:read", { messageId: crypto.randomUUID() })
    expect(unknown).toMatchObject({ ok: false, error: { status: 404 } })
    aliceApp.close()
    bobApp.close()
  })
})

describe("blocks and privacy", () => {
  test("a blocked user (either way) gets neither typing nor presence; an unrelated co-member does", async () => {
    const [alice, bob, carol] = await Promise.all([signUp(server), signUp(server), signUp(server)])
    const groupId = await createGroup(alice, [bob, carol])
    const blocked = await server.api("POST", `/api/settings/privacy/block/${alice.user.id}`, {
      token: bob.accessToken,
    })
    expect(blocked.status).toBeLessThan(300)
    const bobNative = await connectNative(server, { token: bob.accessToken })
    const carolNative = await connectNative(server, { token: carol.accessToken })
    await Promise.all([bobNative.next("hello"), carolNative.next("hello")])

    const aliceNative = await connectNative(server, { token: alice.accessToken })
    await carolNative.next("user:online", (f) => f.data.user_id === alice.user.id)
    expect(await aliceNative.request("typing:start", { conversation_id: groupId })).toMatchObject({
      event: "ack",
    })
    await carolNative.next("typing:start", (f) => f.data.user_id === alice.user.id)
    // Bob blocked Alice: his socket saw neither (Carol's copies prove both were delivered by now).
    expect(bobNative.frames.some((f) => f.data?.user_id === alice.user.id)).toBe(false)
    // The other way round too: Alice does not see Bob typing.
    expect(await bobNative.request("typing:start", { conversation_id: groupId })).toMatchObject({
      event: "ack",
    })
    await carolNative.next("typing:start", (f) => f.data.user_id === bob.user.id)
    expect(aliceNative.frames.some((f) => f.event === "typing:start")).toBe(false)
    for (const c of [aliceNative, bobNative, carolNative]) c.close()
  })

  test("show_online_status off: nobody is told, and REST is_online stays false", async () => {
    const [alice, bob] = await Promise.all([signUp(server), signUp(server)])
    await createDirect(alice, bob)
    const hidden = await server.api("PUT", "/api/settings/privacy?show_online_status=false", {
      token: alice.accessToken,
    })
    expect(hidden.status).toBeLessThan(300)
    const bobNative = await connectNative(server, { token: bob.accessToken })
    await bobNative.next("hello")
    const aliceNative = await connectNative(server, { token: alice.accessToken })
    await aliceNative.next("hello")
    // Alice types, so something from her does reach Bob: the presence frame would have come before it.
    await aliceNative.request("typing:start", { conversation_id: await createDirect(alice, bob) })
    await bobNative.next("typing:start")
    expect(bobNative.frames.some((f) => f.event === "user:online")).toBe(false)
    expect(server.deps.presence.isOnline(alice.user.id)).toBe(false)
    const profile = await server.api("GET", `/api/users/${alice.user.id}`, { token: bob.accessToken })
    expect(profile.body.is_online).toBe(false)
    aliceNative.close()
    await aliceNative.closed
    await Bun.sleep(150) // past the grace: an offline frame would be here by now
    expect(bobNative.frames.some((f) => f.event === "user:offline")).toBe(false)
    bobNative.close()
  })

  test("REST is_online follows the live sockets", async () => {
    const [alice, bob] = await Promise.all([signUp(server), signUp(server)])
    const read = async () =>
      (await server.api("GET", `/api/users/${alice.user.id}`, { token: bob.accessToken })).body.is_online
    expect(await read()).toBe(false)
    const app = socketIoClient(server, alice.accessToken)
    await connected(app)
    expect(await read()).toBe(true)
    app.close()
    await waitFor(async () => (await read()) === false)
  })
})

describe("presence scope", () => {
  test("shown through direct chats and small groups, not through groups over realtime.presence_group_limit", async () => {
    const own = await startTestServer({
      config: { "realtime.presence_group_limit": 2, "realtime.presence_grace": "50ms" },
    })
    try {
      const [alice, bob, carol, dave] = await Promise.all([
        signUp(own),
        signUp(own),
        signUp(own),
        signUp(own),
      ])
      // Bob shares only a 3-member group with Alice; Dave shares a direct chat with her.
      await own.api("POST", "/api/conversations", {
        token: alice.accessToken,
        body: { type: "GROUP", name: "big", participant_ids: [bob.user.id, carol.user.id] },
      })
      await own.api("POST", "/api/conversations", {
        token: alice.accessToken,
        body: { type: "DIRECT", participant_ids: [dave.user.id] },
      })
      const bobNative = await connectNative(own, { token: bob.accessToken })
      const daveNative = await connectNative(own, { token: dave.accessToken })
      await Promise.all([bobNative.next("hello"), daveNative.next("hello")])
      const aliceNative = await connectNative(own, { token: alice.accessToken })
      await daveNative.next("user:online", (f) => f.data.user_id === alice.user.id)
      expect(bobNative.frames.some((f) => f.event === "user:online")).toBe(false)
      for (const c of [aliceNative, bobNative, daveNative]) c.close()
    } finally {
      await own.stop()
    }
  })
})
