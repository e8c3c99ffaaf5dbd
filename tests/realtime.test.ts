import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { directChat } from "./helpers/messaging.ts"
import { connected, connectNative, socketIoClient } from "./helpers/realtime.ts"
import { type TestServer, startTestServer } from "./helpers/server.ts"
import { requestCode, signUp } from "./helpers/users.ts"
import { waitFor } from "./helpers/wait.ts"

let server: TestServer
beforeAll(async () => {
  server = await startTestServer({ config: { "realtime.presence_grace": "50ms" } })
})
afterAll(() => server.stop())

describe("native /ws: connecting", () => {
  test("a valid access token gets a hello frame naming the user and session", async () => {
    const alice = await signUp(server)
    const client = await connectNative(server, { token: alice.accessToken })
    const hello = await client.next("hello")
    expect(hello.data).toMatchObject({ user_id: alice.user.id })
    expect(typeof hello.data.socket_id).toBe("string")
    expect(typeof hello.data.session_id).toBe("string")
    client.close()
  })

  test("the token may come in an Authorization header instead of the query", async () => {
    const alice = await signUp(server)
    const ws = new WebSocket(server.wsUrl("/ws"), {
      headers: { authorization: `Bearer ${alice.accessToken}` },
    } as any)
    const first = await new Promise<any>(
      (resolve) => (ws.onmessage = (e) => resolve(JSON.parse(String(e.data)))),
    )
    expect(first).toMatchObject({ event: "hello", data: { user_id: alice.user.id } })
    ws.close()
  })

  const refusals: [string, Record<string, string>, string][] = [
    ["no token", {}, "auth.missing_token"],
    ["a malformed token", { token: "not-a-jwt" }, "auth.invalid_token"],
    ["a token signed with another key", { token: forgedToken() }, "auth.invalid_token"],
  ]
  for (const [what, query, code] of refusals)
    test(`${what}: an error frame, then close 4401`, async () => {
      const client = await connectNative(server, query)
      const closed = await client.closed
      expect(closed.code).toBe(4401)
      expect(client.frames).toEqual([
        { event: "error", data: expect.objectContaining({ code, status: 401 }) },
      ])
    })

  test("a plain GET /ws is 426 with the error shape", async () => {
    const res = await server.api("GET", "/ws")
    expect(res.status).toBe(426)
    expect(res.body).toMatchObject({ code: "realtime.upgrade_required" })
  })

  test("an expired access token of a live session is accepted (reconnect after sleep); after logout it is refused", async () => {
    const alice = await signUp(server)
    server.clock.advance(server.deps.config.auth.access_token_ttl * 1000 + 60_000)
    try {
      const me = await server.api("GET", "/api/auth/me", { token: alice.accessToken })
      expect(me.status).toBe(401) // REST is strict
      const client = await connectNative(server, { token: alice.accessToken })
      await client.next("hello")
      client.close()
      const sio = socketIoClient(server, alice.accessToken)
      await connected(sio)
      sio.close()

      // End the session (logout needs a fresh access token: REST refuses the expired one).
      const refreshed = await server.api("POST", "/api/auth/refresh", {
        body: { refresh_token: alice.refreshToken },
      })
      expect(refreshed.status).toBe(200)
      const out = await server.api("POST", "/api/auth/logout", { token: refreshed.body.access_token })
      expect(out.status).toBeLessThan(300)
      const refused = await connectNative(server, { token: alice.accessToken })
      expect((await refused.closed).code).toBe(4401)
      expect(refused.frames[0]).toMatchObject({ event: "error", data: { code: "auth.session_ended" } })
    } finally {
      server.clock.advance(-(server.deps.config.auth.access_token_ttl * 1000 + 60_000))
    }
  })
})

describe("native /ws: frames", () => {
  test("ping gets pong (with the id when given); bad frames and unknown events get error frames and keep the socket", async () => {
    const alice = await signUp(server)
    const client = await connectNative(server, { token: alice.accessToken })
    await client.next("hello")
    client.ws.send(JSON.stringify({ event: "ping", id: 7 }))
    expect(await client.next("pong", (f) => f.id === 7)).toEqual({ event: "pong", id: 7 })
    client.ws.send("{not json")
    expect((await client.next("error")).data).toMatchObject({ code: "realtime.bad_frame", status: 400 })
    client.ws.send(new Uint8Array([1, 2, 3]))
    await waitFor(() => client.frames.filter((f) => f.event === "error").length === 2)
    const unknown = await client.request("nope:nope", {})
    expect(unknown).toMatchObject({ event: "error", data: { code: "realtime.unknown_event", status: 400 } })
    const missing = await client.request("join:conversation", {})
    expect(missing).toMatchObject({ event: "error", data: { code: "realtime.invalid_payload", status: 400 } })
    const notMember = await client.request("join:conversation", { conversation_id: crypto.randomUUID() })
    expect(notMember).toMatchObject({
      event: "error",
      data: { code: "conversation.not_member", status: 403 },
    })
    expect(client.ws.readyState).toBe(WebSocket.OPEN)
    client.close()
  })
})

describe("Socket.IO /socket.io/: connecting like the app", () => {
  for (const transports of [["websocket", "polling"], ["polling", "websocket"], ["polling"]] as const)
    test(`connects with auth.token over ${transports.join(" then ")}`, async () => {
      const alice = await signUp(server)
      const client = socketIoClient(server, alice.accessToken, [...transports])
      await connected(client)
      expect(client.socket.connected).toBe(true)
      await waitFor(() => server.deps.presence.isOnline(alice.user.id))
      client.close()
    })

  const refusals: [string, string | undefined, string][] = [
    ["no token", undefined, "auth.missing_token"],
    ["a malformed token", "garbage", "auth.invalid_token"],
    ["a forged token", forgedToken(), "auth.invalid_token"],
  ]
  for (const [what, token, code] of refusals)
    test(`${what}: connect_error with data.code ${code}`, async () => {
      const client = socketIoClient(server, token as string)
      const error: any = await connected(client).then(
        () => null,
        (e) => e,
      )
      client.close()
      expect(error).not.toBeNull()
      expect(error.data).toMatchObject({ code })
      expect(typeof error.message).toBe("string")
    })

  test("join:conversation of a conversation the user is not in is refused (ack and error event)", async () => {
    const alice = await signUp(server)
    const client = socketIoClient(server, alice.accessToken)
    await connected(client)
    const ack = await client.request("join:conversation", crypto.randomUUID())
    expect(ack).toMatchObject({ ok: false, error: { code: "conversation.not_member", status: 403 } })
    client.socket.emit("join:conversation", crypto.randomUUID())
    const [error] = await client.next("error")
    expect(error).toMatchObject({ event: "join:conversation", code: "conversation.not_member" })
    client.close()
  })
})

describe("sessions", () => {
  test("logout closes that session's sockets on both protocols (4403 / io server disconnect), not other sessions'", async () => {
    const alice = await signUp(server)
    server.clock.advance(2 * 60_000) // past the resend cool-down
    const code = await requestCode(server, alice.phone)
    const second = await server.api("POST", "/api/auth/login", {
      body: { phone_number: alice.phone, verification_code: code },
    })
    expect(second.status).toBe(200)
    const otherDevice = await connectNative(server, { token: second.body.access_token })
    await otherDevice.next("hello")
    const native = await connectNative(server, { token: alice.accessToken })
    await native.next("hello")
    const sio = socketIoClient(server, alice.accessToken)
    await connected(sio)
    const disconnected = new Promise<string>((resolve) => sio.socket.once("disconnect", resolve))

    const out = await server.api("POST", "/api/auth/logout", {
      token: alice.accessToken,
      body: { refresh_token: alice.refreshToken },
    })
    expect(out.status).toBeLessThan(300)
    expect(await native.closed).toEqual({ code: 4403, reason: "auth.session_ended" })
    expect(await disconnected).toBe("io server disconnect")
    expect(otherDevice.ws.readyState).toBe(WebSocket.OPEN)
    expect(server.deps.presence.isOnline(alice.user.id)).toBe(true)
    otherDevice.close()
    await waitFor(() => server.deps.presence.isOnline(alice.user.id) === false)
  })
})

describe("shutdown", () => {
  test("stopping the server closes native sockets with 1001 and Socket.IO transports so the app reconnects", async () => {
    const own = await startTestServer()
    try {
      const alice = await signUp(own)
      const native = await connectNative(own, { token: alice.accessToken })
      await native.next("hello")
      const sio = socketIoClient(own, alice.accessToken)
      await connected(sio)
      const reason = new Promise<string>((resolve) => sio.socket.once("disconnect", resolve))
      await own.stop()
      expect(await native.closed).toEqual({ code: 1001, reason: "server.shutting_down" })
      expect(await reason).toBe("transport close")
      sio.close()
    } finally {
      await own.stop()
    }
  })
})

/** A JWT-shaped token signed with a key the server does not have. */
function forgedToken(): string {
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url")
  const head = b64({ alg: "HS256", typ: "JWT" })
  const body = b64({ sub: crypto.randomUUID(), sid: crypto.randomUUID(), type: "access", exp: 4102444800 })
  const sig = new Bun.CryptoHasher("sha256", "wrong-key").update(`${head}.${body}`).digest("base64url")
  return `${head}.${body}.${sig}`
}

describe("back-pressure", () => {
  // A `users` event goes socket by socket; a conversation event through the conversation's topic.
  test.each(["users", "conversation"] as const)(
    "a consumer that stops reading is closed with 4429 once its buffer passes the limit (%s events); the server keeps serving",
    async (kind) => {
      const own = await startTestServer({ config: { "realtime.send_buffer_limit": 64 * 1024 } })
      try {
        const alice = await signUp(own)
        const bob = await signUp(own)
        const chat = await directChat(own, alice, bob)
        const child = Bun.spawn(
          [
            process.execPath,
            `${import.meta.dir}/fixtures/ws-client.ts`,
            own.wsUrl(`/ws?token=${alice.accessToken}`),
          ],
          { stdout: "pipe" },
        )
        const reader = child.stdout.getReader()
        let out = ""
        while (!out.includes("open")) out += new TextDecoder().decode((await reader.read()).value)
        await waitFor(() => own.deps.presence.isOnline(alice.user.id))
        process.kill(child.pid, "SIGSTOP")
        const blob = "x".repeat(64 * 1024)
        // Far more than the kernel's socket buffers hold, so the server's own queue must grow.
        for (let i = 0; i < 1000 && own.deps.presence.isOnline(alice.user.id); i++) {
          own.deps.events.emit(
            kind === "users"
              ? { type: "users", userIds: [alice.user.id], name: "test:blob", data: { i, blob } }
              : { type: "conversation", conversationId: chat, name: "test:blob", data: { i, blob } },
          )
          await Bun.sleep(1)
        }
        process.kill(child.pid, "SIGCONT")
        for (;;) {
          const chunk = await reader.read()
          if (chunk.done) break
          out += new TextDecoder().decode(chunk.value)
        }
        const result = JSON.parse(out.trim().split("\n").at(-1)!)
        expect(result).toMatchObject({ code: 4429, reason: "realtime.slow_consumer" })
        expect(result.frames).toBeGreaterThan(0)
        expect((await own.api("GET", "/health")).status).toBe(200)
      } finally {
        await own.stop()
      }
    },
  )
})
