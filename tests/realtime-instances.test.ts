import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { connected, connectNative, socketIoClient } from "./helpers/realtime.ts"
import { createTestDatabase, dialectUnderTest, type TestServer, startTestServer } from "./helpers/server.ts"
import { signUp } from "./helpers/users.ts"
import { waitFor } from "./helpers/wait.ts"

// Two instances on one database and one bus: Redis always; Postgres LISTEN/NOTIFY when the database is Postgres.
const buses = dialectUnderTest === "postgres" ? (["redis", "postgres"] as const) : (["redis"] as const)

for (const bus of buses)
  describe(`two instances on one database, bus = ${bus}`, () => {
    let a: TestServer
    let b: TestServer
    let cleanup: () => Promise<void>
    beforeAll(async () => {
      const config = {
        "realtime.bus": bus,
        "realtime.bus_channel": `urge_test_${Math.random().toString(36).slice(2, 10)}`,
        "realtime.presence_grace": "50ms",
      }
      if (dialectUnderTest === "postgres") {
        const database = await createTestDatabase()
        a = await startTestServer({ databaseUrl: database.url, config })
        b = await startTestServer({ databaseUrl: database.url, config })
        cleanup = database.drop
      } else {
        // SQLite: both instances open the same file (WAL lets them share it).
        const dataDir = mkdtempSync(join(tmpdir(), "urge-instances-"))
        a = await startTestServer({ dataDir, config })
        b = await startTestServer({ dataDir, config })
        cleanup = async () => rmSync(dataDir, { recursive: true, force: true })
      }
    })
    afterAll(async () => {
      await b?.stop()
      await a?.stop()
      await cleanup?.()
    })

    test("presence is coherent: online on both while any instance holds a socket, offline on both after the last", async () => {
      const alice = await signUp(a)
      const onA = await connectNative(a, { token: alice.accessToken })
      await onA.next("hello")
      await waitFor(() => b.deps.presence.isOnline(alice.user.id), 3000, "B to see Alice online")
      const onB = socketIoClient(b, alice.accessToken)
      await connected(onB)
      onA.close()
      await onA.closed
      // Still held by B: nobody may see her offline (wait out A's grace, then check both).
      await Bun.sleep(200)
      expect(a.deps.presence.isOnline(alice.user.id)).toBe(true)
      expect(b.deps.presence.isOnline(alice.user.id)).toBe(true)
      onB.close()
      await waitFor(
        () => !a.deps.presence.isOnline(alice.user.id) && !b.deps.presence.isOnline(alice.user.id),
      )
    })

    test("a session ended on A closes its socket on B", async () => {
      const alice = await signUp(a)
      const onB = await connectNative(b, { token: alice.accessToken })
      await onB.next("hello")
      const out = await a.api("POST", "/api/auth/logout", { token: alice.accessToken })
      expect(out.status).toBeLessThan(300)
      expect(await onB.closed).toEqual({ code: 4403, reason: "auth.session_ended" })
    })

    test("a client on A sends, a client on B receives (and sees the sender come online)", async () => {
      const [alice, bob] = await Promise.all([signUp(a), signUp(b)])
      const direct = await a.api("POST", "/api/conversations", {
        token: alice.accessToken,
        body: { type: "DIRECT", participant_ids: [bob.user.id] },
      })
      expect(direct.status).toBeLessThan(300)
      const bobApp = socketIoClient(b, bob.accessToken)
      await connected(bobApp)
      const aliceNative = await connectNative(a, { token: alice.accessToken })
      await aliceNative.next("hello")
      const [online] = await bobApp.next("user:online", ([id]) => id === alice.user.id)
      expect(online).toBe(alice.user.id)

      const ack = await aliceNative.request("message:sent", {
        conversation_id: direct.body.id,
        content: "across instances",
        client_message_id: crypto.randomUUID(),
      })
      expect(ack.event).toBe("ack")
      const [received] = await bobApp.next("message:received", ([m]) => m.id === ack.data.id)
      expect(received).toMatchObject({ content: "across instances", senderId: alice.user.id })
      bobApp.close()
      aliceNative.close()
    })

    test("an instance that stops: its users who do not reconnect elsewhere are shown offline on the other", async () => {
      const extra = await startTestServer({
        ...(dialectUnderTest === "postgres"
          ? { databaseUrl: a.deps.config.database.url }
          : { dataDir: a.deps.config.data.dir }),
        config: {
          "realtime.bus": bus,
          "realtime.bus_channel": a.deps.config.realtime.bus_channel,
          "realtime.presence_grace": "50ms",
        },
      })
      const [alice, bob] = await Promise.all([signUp(a), signUp(a)])
      await a.api("POST", "/api/conversations", {
        token: alice.accessToken,
        body: { type: "DIRECT", participant_ids: [bob.user.id] },
      })
      const bobNative = await connectNative(b, { token: bob.accessToken })
      await bobNative.next("hello")
      const aliceNative = await connectNative(extra, { token: alice.accessToken })
      await bobNative.next("user:online", (f) => f.data.user_id === alice.user.id)
      await extra.stop()
      expect((await aliceNative.closed).code).toBe(1001)
      const offline = await bobNative.next("user:offline", (f) => f.data.user_id === alice.user.id)
      expect(offline.data.last_seen).toMatch(/Z$/)
      expect(b.deps.presence.isOnline(alice.user.id)).toBe(false)
      bobNative.close()
    })
  })
