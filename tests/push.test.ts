import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { createPublicKey, generateKeyPairSync, verify } from "node:crypto"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import http2 from "node:http2"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { loadConfig } from "../src/config.ts"
import { createDeps } from "../src/deps.ts"
import { createLogger } from "../src/logger.ts"
import { fcmDriver, readServiceAccount } from "../src/push/push.fcm.ts"
import { directChat, group, send } from "./helpers/messaging.ts"
import { connectNative } from "./helpers/realtime.ts"
import { createTestDatabase, dialectUnderTest, startTestServer, type TestServer } from "./helpers/server.ts"
import { type SignedUpUser, signUp } from "./helpers/users.ts"
import { waitFor } from "./helpers/wait.ts"

/** A request the fake Google received. */
type Seen = { path: string; headers: Headers; text: string; json?: any }

const dir = mkdtempSync(join(tmpdir(), "urge-push-test-"))
const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 })

/** Plays Google: the OAuth token endpoint and FCM's messages:send (tokens named dead-* / bad-* are refused). */
const google: {
  seen: Seen[]
  revoked: Set<string>
  tokensIssued: number
  server: ReturnType<typeof Bun.serve>
  sendsTo(token: string): any[]
} = {
  seen: [] as Seen[],
  revoked: new Set<string>(),
  tokensIssued: 0,
  server: Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    async fetch(req): Promise<Response> {
      const url = new URL(req.url)
      const text = await req.text()
      const seen: Seen = { path: url.pathname, headers: req.headers, text }
      google.seen.push(seen)
      if (url.pathname === "/token") {
        google.tokensIssued++
        return Response.json({
          access_token: `at-${google.tokensIssued}`,
          expires_in: 3600,
          token_type: "Bearer",
        })
      }
      if (url.pathname === "/v1/projects/test-project/messages:send") {
        seen.json = JSON.parse(text)
        if (google.revoked.has(req.headers.get("authorization")!.replace("Bearer ", "")))
          return Response.json({ error: { code: 401, status: "UNAUTHENTICATED" } }, { status: 401 })
        const token: string = seen.json.message.token
        if (token.startsWith("dead-"))
          return Response.json(
            {
              error: {
                code: 404,
                message: "Requested entity was not found.",
                status: "NOT_FOUND",
                details: [
                  {
                    "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                    errorCode: "UNREGISTERED",
                  },
                ],
              },
            },
            { status: 404 },
          )
        if (token.startsWith("bad-"))
          return Response.json(
            {
              error: {
                code: 400,
                message: "The registration token is not a valid FCM registration token",
                status: "INVALID_ARGUMENT",
                details: [
                  {
                    "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                    errorCode: "INVALID_ARGUMENT",
                  },
                  {
                    "@type": "type.googleapis.com/google.rpc.BadRequest",
                    fieldViolations: [{ field: "message.token", description: "Invalid registration token" }],
                  },
                ],
              },
            },
            { status: 400 },
          )
        if (token.startsWith("flaky-"))
          return new Response("unavailable", { status: 503, headers: { "retry-after": "0" } })
        return Response.json({ name: "projects/test-project/messages/1" })
      }
      return new Response("not found", { status: 404 })
    },
  }),
  /** The FCM sends to one device token. */
  sendsTo(token: string) {
    return google.seen.filter((s) => s.json?.message?.token === token).map((s) => s.json.message)
  },
}
const googleUrl = `http://127.0.0.1:${google.server.port}`
const serviceAccountPath = join(dir, "service-account.json")
writeFileSync(
  serviceAccountPath,
  JSON.stringify({
    type: "service_account",
    project_id: "test-project",
    private_key_id: "k1",
    private_key: privateKey.export({ type: "pkcs8", format: "pem" }),
    client_email: "push@test-project.iam.gserviceaccount.com",
    token_uri: `${googleUrl}/token`,
  }),
)

let server: TestServer
beforeAll(async () => {
  server = await startTestServer({
    config: {
      "push.driver": "fcm",
      "push.fcm_service_account": serviceAccountPath,
      "push.fcm_api_url": googleUrl,
      "realtime.presence_grace": "0ms",
    },
  })
})
afterAll(async () => {
  await server?.stop()
  google.server.stop(true)
  rmSync(dir, { recursive: true, force: true })
})

let tokenCount = 0
/** Registers a fresh device token for `user` (prefix chooses how the fake FCM answers). */
async function device(user: SignedUpUser, prefix = "tok", platform = "android") {
  const token = `${prefix}-${++tokenCount}-${"x".repeat(20)}`
  const res = await server.api("POST", "/api/settings/notifications/register", {
    token: user.accessToken,
    body: { token, platform },
  })
  expect(res.status).toBe(200)
  return token
}

/** Sends and waits until every push it caused has been handed to the provider. */
async function sendAndSettle(from: SignedUpUser, conversationId: string, content: string, extra = {}) {
  const message = await send(server, from, conversationId, content, extra)
  await server.deps.push.idle()
  return message
}

describe("device token registration", () => {
  test("refusals: no token 401, a wrong platform 400 with the contract's message, an empty token 422", async () => {
    const alice = await signUp(server)
    const anonymous = await server.api("POST", "/api/settings/notifications/register", {
      body: { token: "t", platform: "ios" },
    })
    expect(anonymous.status).toBe(401)
    for (const platform of ["windows", "", undefined]) {
      const res = await server.api("POST", "/settings/notifications/register", {
        token: alice.accessToken,
        body: { token: "abc", platform },
      })
      expect(res.status).toBe(400)
      expect(res.body).toEqual({ detail: "Platform must be 'ios' or 'android'", code: "push.bad_platform" })
    }
    const empty = await server.api("POST", "/api/settings/notifications/register", {
      token: alice.accessToken,
      body: { token: "", platform: "ios" },
    })
    expect(empty.status).toBe(422)
  })

  test("register answers {success, message}; the seed's /notifications/register takes IOS/ANDROID", async () => {
    const alice = await signUp(server)
    const res = await server.api("POST", "/api/settings/notifications/register", {
      token: alice.accessToken,
      body: { token: "ios-token-1", platform: "ios" },
    })
    expect(res.status).toBe(200)
    expect(res.body).toEqual({ success: true, message: "Device token registered" })
    // Registering again (cold start, token refresh) is fine.
    const again = await server.api("POST", "/settings/notifications/register", {
      token: alice.accessToken,
      body: { token: "ios-token-1", platform: "ios" },
    })
    expect(again.status).toBe(200)
    const legacy = await server.api("POST", "/api/notifications/register", {
      token: alice.accessToken,
      body: { device_token: "android-token-1", platform: "ANDROID" },
    })
    expect(legacy.status).toBe(200)
    const legacyBad = await server.api("POST", "/api/notifications/register", {
      token: alice.accessToken,
      body: { device_token: "x", platform: "BLACKBERRY" },
    })
    expect(legacyBad.status).toBe(400)
  })

  test("the routes are in the OpenAPI document with their bodies", async () => {
    const doc = (await server.api("GET", "/docs/json")).body
    const register = doc.paths["/api/settings/notifications/register"].post
    expect(Object.keys(register.requestBody.content["application/json"].schema.properties)).toEqual([
      "token",
      "platform",
    ])
    expect(doc.paths["/api/settings/notifications/unregister"].delete).toBeDefined()
    expect(doc.paths["/api/notifications/register"].post).toBeDefined()
  })

  test("unregister forgets the caller's own token only", async () => {
    const [alice, bob] = [await signUp(server), await signUp(server)]
    const token = await device(alice)
    const chat = await directChat(server, bob, alice)
    await sendAndSettle(bob, chat, "before unregister")
    const bobs = await server.api("DELETE", `/api/settings/notifications/unregister?token=${token}`, {
      token: bob.accessToken,
    })
    expect(bobs.status).toBe(404)
    const own = await server.api(
      "DELETE",
      `/api/settings/notifications/unregister?token=${encodeURIComponent(token)}`,
      {
        token: alice.accessToken,
      },
    )
    expect(own).toMatchObject({ status: 200, body: { success: true } })
    await sendAndSettle(bob, chat, "after unregister")
    expect(google.sendsTo(token).map((m) => m.notification.body)).toEqual(["before unregister"])
  })

  test("a token registered by another user moves to them (the device changed hands)", async () => {
    const [alice, bob, carol] = [await signUp(server), await signUp(server), await signUp(server)]
    const token = await device(alice)
    const res = await server.api("POST", "/api/settings/notifications/register", {
      token: bob.accessToken,
      body: { token, platform: "android" },
    })
    expect(res.status).toBe(200)
    await sendAndSettle(carol, await directChat(server, carol, alice), "to alice")
    expect(google.sendsTo(token)).toEqual([])
    await sendAndSettle(carol, await directChat(server, carol, bob), "to bob")
    expect(google.sendsTo(token).map((m) => m.notification.body)).toEqual(["to bob"])
  })

  test("a user keeps their 20 most recently registered devices; older ones are forgotten", async () => {
    const [alice, bob] = [await signUp(server), await signUp(server)]
    const tokens: string[] = []
    for (let i = 0; i < 20; i++) {
      tokens.push(await device(alice))
      server.clock.advance(1)
    }
    // Registering again (the app does on every cold start) makes a token recent: the second is now the oldest.
    await server.api("POST", "/api/settings/notifications/register", {
      token: alice.accessToken,
      body: { token: tokens[0], platform: "android" },
    })
    server.clock.advance(1)
    tokens.push(await device(alice))
    await sendAndSettle(bob, await directChat(server, bob, alice), "to twenty devices")
    const reached = tokens.filter((t) => google.sendsTo(t).length > 0)
    expect(reached).toEqual(tokens.filter((t) => t !== tokens[1]))
  })

  test("logout: the session's tokens get no more pushes", async () => {
    const [alice, bob] = [await signUp(server), await signUp(server)]
    const token = await device(alice)
    const chat = await directChat(server, bob, alice)
    await sendAndSettle(bob, chat, "while signed in")
    expect((await server.api("POST", "/api/auth/logout", { token: alice.accessToken })).status).toBe(200)
    await server.deps.push.idle()
    await sendAndSettle(bob, chat, "while signed out")
    expect(google.sendsTo(token).map((m) => m.notification.body)).toEqual(["while signed in"])
  })
})

describe("FCM HTTP v1", () => {
  test("service account JWT → access token (cached) → messages:send with the app's payload", async () => {
    const [alice, bob] = [await signUp(server, { displayName: "Alice" }), await signUp(server)]
    const token = await device(bob)
    const chat = await directChat(server, alice, bob)
    const issuedBefore = google.tokensIssued
    const message = await sendAndSettle(alice, chat, "Hello Bob")

    // The OAuth exchange (at most one: an earlier test may already have a cached token).
    const exchange = google.seen.find((s) => s.path === "/token")!
    expect(exchange.headers.get("content-type")).toContain("application/x-www-form-urlencoded")
    const form = new URLSearchParams(exchange.text)
    expect(form.get("grant_type")).toBe("urn:ietf:params:oauth:grant-type:jwt-bearer")
    const [header, claims, signature] = form.get("assertion")!.split(".")
    expect(JSON.parse(Buffer.from(header!, "base64url").toString())).toMatchObject({
      alg: "RS256",
      typ: "JWT",
    })
    const payload = JSON.parse(Buffer.from(claims!, "base64url").toString())
    expect(payload).toMatchObject({
      iss: "push@test-project.iam.gserviceaccount.com",
      aud: `${googleUrl}/token`,
      scope: "https://www.googleapis.com/auth/firebase.messaging",
    })
    expect(payload.exp - payload.iat).toBe(3600)
    const signed = verify(
      "RSA-SHA256",
      Buffer.from(`${header}.${claims}`),
      createPublicKey(publicKey.export({ type: "spki", format: "pem" })),
      Buffer.from(signature!, "base64url"),
    )
    expect(signed).toBe(true)

    const sends = google.seen.filter((s) => s.json?.message?.token === token)
    expect(sends).toHaveLength(1)
    expect(sends[0]!.headers.get("authorization")).toMatch(/^Bearer at-\d+$/)
    expect(sends[0]!.json.message).toEqual({
      token,
      notification: { title: "Alice", body: "Hello Bob" },
      data: {
        type: "new_message",
        conversation_id: chat,
        message_id: message.id,
        sender_name: "Alice",
        is_group: "false",
      },
      android: { priority: "high", notification: { sound: "default" } },
      apns: { headers: { "apns-priority": "10" }, payload: { aps: { sound: "default" } } },
    })

    // The access token is reused, not fetched per push.
    await sendAndSettle(alice, chat, "Again")
    expect(google.sendsTo(token)).toHaveLength(2)
    expect(google.tokensIssued).toBe(Math.max(issuedBefore, 1))
  })

  test("the access token is reused until a minute before it expires, and fetched again after a 401", async () => {
    let now = Date.now()
    const driver = fcmDriver({
      account: readServiceAccount(serviceAccountPath),
      apiUrl: googleUrl,
      logger: createLogger("error"),
      now: () => now,
    })
    const message = { title: "t", body: "b", data: { type: "new_message" }, sound: false }
    const push = async () => {
      const token = `cache-${++tokenCount}-${"x".repeat(20)}`
      expect(await driver.send({ token, platform: "android" }, message)).toEqual({ ok: true })
      return google.sendsTo(token).length
    }
    const issued = google.tokensIssued
    await push()
    await push()
    expect(google.tokensIssued).toBe(issued + 1)
    now += 3600_000 - 61_000
    await push()
    expect(google.tokensIssued).toBe(issued + 1)
    now += 2_000
    await push()
    expect(google.tokensIssued).toBe(issued + 2)
    google.revoked.add(`at-${google.tokensIssued}`)
    expect(await push()).toBe(2) // refused once with 401, sent again with a fresh token
    expect(google.tokensIssued).toBe(issued + 3)
  })

  test("doctor's check: the service account gets an access token, or the failure is reported", async () => {
    expect(await server.deps.push.verify()).toEqual({
      ok: true,
      text: "fcm (project test-project, push@test-project.iam.gserviceaccount.com: credentials accepted)",
    })
    const wrong = join(dir, "wrong-account.json")
    writeFileSync(
      wrong,
      JSON.stringify({
        project_id: "p",
        client_email: "e@p",
        private_key: privateKey.export({ type: "pkcs8", format: "pem" }),
        token_uri: `${googleUrl}/no-such-endpoint`,
      }),
    )
    const driver = fcmDriver({
      account: readServiceAccount(wrong),
      apiUrl: googleUrl,
      logger: createLogger("error"),
    })
    await expect(driver.verify()).rejects.toThrow("token exchange failed: HTTP 404")
  })

  test("bodies: long text is cut at 100 characters + '...', media says 'Sent a <type>', preview off says 'New message'", async () => {
    const [alice, bob] = [await signUp(server, { displayName: "Alice" }), await signUp(server)]
    const token = await device(bob)
    const chat = await directChat(server, alice, bob)
    const long = "é".repeat(99) + "😀" + "tail"
    await sendAndSettle(alice, chat, long)
    await sendAndSettle(alice, chat, "", { message_type: "IMAGE", media_url: "https://example.com/a.jpg" })
    await server.api("PUT", "/api/settings/notifications", {
      token: bob.accessToken,
      body: { show_preview: false },
    })
    await sendAndSettle(alice, chat, "secret")
    expect(google.sendsTo(token).map((m) => m.notification.body)).toEqual([
      "é".repeat(99) + "😀...",
      "Sent a image",
      "New message",
    ])
  })

  test("groups: title '<sender> in <group>', is_group 'true'; group_notifications off and blocks stop it", async () => {
    const [alice, bob, carol, dave] = [
      await signUp(server, { displayName: "Alice" }),
      await signUp(server),
      await signUp(server),
      await signUp(server),
    ]
    const [bobToken, carolToken, daveToken] = [await device(bob), await device(carol), await device(dave)]
    const chat = await group(server, alice, [bob, carol, dave], "Hikers")
    await server.api("PUT", "/api/settings/notifications", {
      token: carol.accessToken,
      body: { group_notifications: false },
    })
    await server.api("POST", `/api/settings/privacy/block/${alice.user.id}`, { token: dave.accessToken })
    await sendAndSettle(alice, chat, "Trail at 9")
    const [push] = google.sendsTo(bobToken)
    expect(push.notification.title).toBe("Alice in Hikers")
    expect(push.data.is_group).toBe("true")
    expect(google.sendsTo(carolToken)).toEqual([])
    expect(google.sendsTo(daveToken)).toEqual([])

    // Messages the server records (a member left) are not pushed.
    expect((await server.api("POST", `/api/groups/${chat}/leave`, { token: dave.accessToken })).status).toBe(
      200,
    )
    await server.deps.push.idle()
    expect(google.sendsTo(bobToken)).toHaveLength(1)
  })

  test("a member with a live socket gets no push; an offline one does", async () => {
    const [alice, bob, carol] = [await signUp(server), await signUp(server), await signUp(server)]
    const [bobToken, carolToken] = [await device(bob), await device(carol)]
    const chat = await group(server, alice, [bob, carol])
    // Carol's online status is hidden: she still has a live socket, so still no push.
    await server.api("PUT", "/api/settings/privacy?show_online_status=false", { token: carol.accessToken })
    const [bobSocket, carolSocket] = [
      await connectNative(server, { token: bob.accessToken }),
      await connectNative(server, { token: carol.accessToken }),
    ]
    const live = server.deps.presence as unknown as { entries: Map<string, { instances: Set<string> }> }
    await waitFor(() => live.entries.get(bob.user.id) && live.entries.get(carol.user.id), 3000, "presence")
    await sendAndSettle(alice, chat, "both online")
    expect(google.sendsTo(bobToken)).toEqual([])
    expect(google.sendsTo(carolToken)).toEqual([])

    bobSocket.close()
    await waitFor(() => !live.entries.get(bob.user.id), 3000, "bob offline")
    await sendAndSettle(alice, chat, "bob offline")
    expect(google.sendsTo(bobToken).map((m) => m.notification.body)).toEqual(["bob offline"])
    expect(google.sendsTo(carolToken)).toEqual([])
    carolSocket.close()
  })

  test("a direct chat: no push while the recipient has a live socket, one after it closed", async () => {
    const [alice, bob] = [await signUp(server), await signUp(server)]
    const bobToken = await device(bob)
    const chat = await directChat(server, alice, bob)
    const live = server.deps.presence as unknown as { entries: Map<string, { instances: Set<string> }> }
    const bobSocket = await connectNative(server, { token: bob.accessToken })
    await waitFor(() => live.entries.get(bob.user.id), 3000, "presence")
    await sendAndSettle(alice, chat, "bob online")
    expect(google.sendsTo(bobToken)).toEqual([])
    bobSocket.close()
    await waitFor(() => !live.entries.get(bob.user.id), 3000, "bob offline")
    await sendAndSettle(alice, chat, "bob offline")
    expect(google.sendsTo(bobToken).map((m) => m.notification.body)).toEqual(["bob offline"])
  })

  test("concurrent sends (one send batch, one candidates query): each push reaches its own conversation's members", async () => {
    const [alice, bob, carol, dave] = [
      await signUp(server),
      await signUp(server),
      await signUp(server),
      await signUp(server),
    ]
    const [aliceToken, bobToken, carolToken, daveToken] = [
      await device(alice),
      await device(bob),
      await device(carol),
      await device(dave),
    ]
    const [aliceBob, carolDave] = [
      await directChat(server, alice, bob),
      await directChat(server, carol, dave),
    ]
    const team = await group(server, alice, [bob, carol])
    await server.api("PUT", `/api/conversations/${team}/mute`, { token: carol.accessToken, body: {} })
    await Promise.all([
      send(server, alice, aliceBob, "a→b 1"),
      send(server, alice, aliceBob, "a→b 2"),
      send(server, bob, aliceBob, "b→a"),
      send(server, dave, carolDave, "d→c"),
      send(server, bob, team, "b→team"),
    ])
    await server.deps.push.idle()
    const bodies = (token: string) =>
      google
        .sendsTo(token)
        .map((m) => m.notification.body)
        .sort()
    expect(bodies(aliceToken)).toEqual(["b→a", "b→team"])
    expect(bodies(bobToken)).toEqual(["a→b 1", "a→b 2"])
    // Carol muted the group; Dave sent the only message of their chat.
    expect(bodies(carolToken)).toEqual(["d→c"])
    expect(bodies(daveToken)).toEqual([])
  })

  test("no push when notifications are off, message_notifications is off, or the conversation is muted", async () => {
    const [alice, bob, carol, dave] = [
      await signUp(server),
      await signUp(server),
      await signUp(server),
      await signUp(server),
    ]
    const [bobToken, carolToken, daveToken] = [await device(bob), await device(carol), await device(dave)]
    const [toBob, toCarol, toDave] = [
      await directChat(server, alice, bob),
      await directChat(server, alice, carol),
      await directChat(server, alice, dave),
    ]
    await server.api("PUT", "/api/settings/notifications", {
      token: bob.accessToken,
      body: { enabled: false },
    })
    await server.api("PUT", "/api/settings/notifications", {
      token: carol.accessToken,
      body: { messageNotifications: false },
    })
    const muted = await server.api("PUT", `/api/conversations/${toDave}/mute`, {
      token: dave.accessToken,
      body: {},
    })
    expect(muted.status).toBe(200)
    for (const chat of [toBob, toCarol, toDave]) await sendAndSettle(alice, chat, "hi")
    expect([google.sendsTo(bobToken), google.sendsTo(carolToken), google.sendsTo(daveToken)]).toEqual([
      [],
      [],
      [],
    ])

    // A mute for a while ends by itself.
    await server.api("PUT", `/api/conversations/${toDave}/mute`, {
      token: dave.accessToken,
      body: { duration: 60 },
    })
    server.clock.advance(61_000)
    await sendAndSettle(alice, toDave, "after the mute")
    expect(google.sendsTo(daveToken).map((m) => m.notification.body)).toEqual(["after the mute"])
  })

  test("tokens FCM calls invalid (404 UNREGISTERED, 400 INVALID_ARGUMENT on the token) are deleted; a 503 is retried, its token kept", async () => {
    const [alice, bob] = [await signUp(server), await signUp(server)]
    const [dead, bad, flaky, good] = [
      await device(bob, "dead"),
      await device(bob, "bad"),
      await device(bob, "flaky"),
      await device(bob),
    ]
    const chat = await directChat(server, alice, bob)
    await sendAndSettle(alice, chat, "first")
    await sendAndSettle(alice, chat, "second")
    expect(google.sendsTo(dead)).toHaveLength(1)
    expect(google.sendsTo(bad)).toHaveLength(1)
    // A 503 is tried again twice, then given up (and the token kept).
    expect(google.sendsTo(flaky)).toHaveLength(6)
    expect(google.sendsTo(good)).toHaveLength(2)
    expect(server.logs.some((l) => l.includes("push: not delivered") && l.includes("HTTP 503"))).toBe(true)
  })
})

describe("two instances on one database and one bus (redis)", () => {
  test("a socket on the other instance counts as live; each message is pushed once, by the instance that took it", async () => {
    const config = {
      "push.driver": "fcm",
      "push.fcm_service_account": serviceAccountPath,
      "push.fcm_api_url": googleUrl,
      "realtime.bus": "redis",
      "realtime.bus_channel": `urge_test_${Math.random().toString(36).slice(2, 10)}`,
      "realtime.presence_grace": "0ms",
    }
    const database = dialectUnderTest === "postgres" ? await createTestDatabase() : null
    const dataDir = database ? undefined : mkdtempSync(join(tmpdir(), "urge-push-instances-"))
    const a = await startTestServer({ databaseUrl: database?.url, dataDir, config })
    const b = await startTestServer({ databaseUrl: database?.url, dataDir, config })
    try {
      const [alice, bob] = [await signUp(a, { displayName: "Alice" }), await signUp(a)]
      const token = `multi-${"x".repeat(20)}`
      await a.api("POST", "/api/settings/notifications/register", {
        token: bob.accessToken,
        body: { token, platform: "android" },
      })
      const chat = (
        await a.api("POST", "/api/conversations", {
          token: alice.accessToken,
          body: { type: "DIRECT", participant_ids: [bob.user.id] },
        })
      ).body.id as string
      const settle = async (content: string) => {
        await send(a, alice, chat, content)
        await Promise.all([a.deps.push.idle(), b.deps.push.idle()])
      }
      const onB = await connectNative(b, { token: bob.accessToken })
      await waitFor(() => a.deps.presence.isOnline(bob.user.id), 3000, "A to see Bob online on B")
      await settle("bob is on B")
      onB.close()
      await waitFor(() => !a.deps.presence.isOnline(bob.user.id), 3000, "A to see Bob gone")
      await settle("bob is gone")
      expect(google.sendsTo(token).map((m) => m.notification.body)).toEqual(["bob is gone"])
    } finally {
      await b.stop()
      await a.stop()
      await database?.drop()
      if (dataDir) rmSync(dataDir, { recursive: true, force: true })
    }
  })
})

describe("other drivers", () => {
  test("a driver without its settings stops startup with a message naming the keys", () => {
    const build = (overrides: Record<string, unknown>) => () =>
      createDeps(loadConfig({ env: {}, overrides: { "data.dir": join(dir, "data"), ...overrides } }))
    expect(build({ "push.driver": "fcm" })).toThrow("push.fcm_service_account")
    expect(build({ "push.driver": "fcm", "push.fcm_service_account": join(dir, "missing.json") })).toThrow(
      "push.fcm_service_account",
    )
    expect(build({ "push.ios_driver": "apns", "push.apns_key_path": join(dir, "k.p8") })).toThrow(
      "push.apns_key_id",
    )
  })

  test("log (the default) writes the push it would send", async () => {
    const own = await startTestServer()
    try {
      const [alice, bob] = [await signUp(own, { displayName: "Alice" }), await signUp(own)]
      await own.api("POST", "/api/settings/notifications/register", {
        token: bob.accessToken,
        body: { token: "log-driver-token-123", platform: "android" },
      })
      const chat = await (async () => {
        const res = await own.api("POST", "/api/conversations", {
          token: alice.accessToken,
          body: { type: "DIRECT", participant_ids: [bob.user.id] },
        })
        return res.body.id as string
      })()
      await send(own, alice, chat, "logged")
      await own.deps.push.idle()
      const line = own.logs.map((l) => JSON.parse(l)).find((l) => l.msg === "push (log driver)")
      expect(line).toMatchObject({ platform: "android", token: "log-driv…", title: "Alice", body: "logged" })
    } finally {
      await own.stop()
    }
  })

  test("apns: ES256 provider token, HTTP/2 POST /3/device/<token>, 410 deletes the token", async () => {
    const ec = generateKeyPairSync("ec", { namedCurve: "P-256" })
    const keyPath = join(dir, "AuthKey_TEST.p8")
    writeFileSync(keyPath, ec.privateKey.export({ type: "pkcs8", format: "pem" }))
    const seen: { headers: http2.IncomingHttpHeaders; body: any }[] = []
    // Cleartext HTTP/2 stands in for Apple (the driver speaks the same protocol over TLS to the real one).
    const apple = http2.createServer()
    apple.on("stream", (stream: http2.ServerHttp2Stream, headers) => {
      let text = ""
      stream.setEncoding("utf8")
      stream.on("data", (c: string) => (text += c))
      stream.on("end", () => {
        seen.push({ headers, body: JSON.parse(text) })
        const gone = String(headers[":path"]).includes("gone")
        stream.respond({ ":status": gone ? 410 : 200, "content-type": "application/json" })
        stream.end(gone ? JSON.stringify({ reason: "Unregistered", timestamp: 1 }) : "")
      })
    })
    await new Promise<void>((resolve) => apple.listen(0, "127.0.0.1", () => resolve()))
    const port = (apple.address() as { port: number }).port
    const own = await startTestServer({
      config: {
        "push.ios_driver": "apns",
        "push.apns_key_path": keyPath,
        "push.apns_key_id": "KEY123",
        "push.apns_team_id": "TEAM456",
        "push.apns_topic": "com.urge.app",
        "push.apns_url": `http://127.0.0.1:${port}`,
      },
    })
    try {
      const [alice, bob] = [await signUp(own, { displayName: "Alice" }), await signUp(own)]
      for (const token of ["ios-live-token-1", "ios-gone-token-1"])
        await own.api("POST", "/api/settings/notifications/register", {
          token: bob.accessToken,
          body: { token, platform: "ios" },
        })
      const res = await own.api("POST", "/api/conversations", {
        token: alice.accessToken,
        body: { type: "DIRECT", participant_ids: [bob.user.id] },
      })
      const chat = res.body.id as string
      const message = await send(own, alice, chat, "Hi from Alice")
      await own.deps.push.idle()
      await send(own, alice, chat, "again")
      await own.deps.push.idle()

      const paths = seen.map((s) => s.headers[":path"])
      expect(paths.filter((p) => p === "/3/device/ios-live-token-1")).toHaveLength(2)
      expect(paths.filter((p) => p === "/3/device/ios-gone-token-1")).toHaveLength(1)
      const first = seen.find((s) => s.headers[":path"] === "/3/device/ios-live-token-1")!
      expect(first.headers["apns-topic"]).toBe("com.urge.app")
      expect(first.headers["apns-push-type"]).toBe("alert")
      expect(first.body).toEqual({
        aps: { alert: { title: "Alice", body: "Hi from Alice" }, sound: "default" },
        type: "new_message",
        conversation_id: chat,
        message_id: message.id,
        sender_name: "Alice",
        is_group: "false",
      })
      const [header, claims, signature] = String(first.headers.authorization)
        .replace(/^bearer /, "")
        .split(".")
      expect(JSON.parse(Buffer.from(header!, "base64url").toString())).toEqual({
        alg: "ES256",
        kid: "KEY123",
      })
      expect(JSON.parse(Buffer.from(claims!, "base64url").toString())).toMatchObject({ iss: "TEAM456" })
      const ok = verify(
        "sha256",
        Buffer.from(`${header}.${claims}`),
        { key: ec.publicKey, dsaEncoding: "ieee-p1363" },
        Buffer.from(signature!, "base64url"),
      )
      expect(ok).toBe(true)
    } finally {
      await own.stop()
      apple.close()
    }
  })
})
