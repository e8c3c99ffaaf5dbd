import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { ChildServer } from "./helpers/child.ts"
import { connectNative, type NativeClient } from "./helpers/realtime.ts"
import { createTestDatabase, dialectUnderTest, type TestServer, startTestServer } from "./helpers/server.ts"
import { type SignedUpUser, signUp } from "./helpers/users.ts"
import { waitFor } from "./helpers/wait.ts"

/**
 * An instance killed with SIGKILL never says goodbye: the others notice its heartbeats stop and show its users
 * offline (those not connected elsewhere). A is a real `urge serve` child process; B runs in this process.
 */
const buses = dialectUnderTest === "postgres" ? (["redis", "postgres"] as const) : (["redis"] as const)
const heartbeatTimeoutMs = 1000
const heartbeatIntervalMs = 100

for (const bus of buses)
  describe(`an instance killed with SIGKILL, bus = ${bus}`, () => {
    const channel = `urge_test_${Math.random().toString(36).slice(2, 10)}`
    const realtime = {
      "realtime.bus": bus,
      "realtime.bus_channel": channel,
      "realtime.presence_grace": "50ms",
      "realtime.heartbeat_interval": `${heartbeatIntervalMs}ms`,
      "realtime.heartbeat_timeout": `${heartbeatTimeoutMs}ms`,
    }
    const childEnv: Record<string, string> = {
      URGE_SERVER_HOST: "127.0.0.1",
      URGE_SERVER_PORT: "0",
      URGE_AUTH_JWT_SECRET: "test-secret-test-secret-test-secret",
      URGE_RATE_LIMIT_ENABLED: "false",
      URGE_LOG_REQUESTS: "false",
      URGE_REALTIME_BUS: bus,
      URGE_REALTIME_BUS_CHANNEL: channel,
      URGE_REALTIME_PRESENCE_GRACE: "50ms",
      URGE_REALTIME_HEARTBEAT_INTERVAL: `${heartbeatIntervalMs}ms`,
      URGE_REALTIME_HEARTBEAT_TIMEOUT: `${heartbeatTimeoutMs}ms`,
    }
    let b: TestServer
    const cleanups: (() => unknown)[] = []
    beforeAll(async () => {
      if (dialectUnderTest === "postgres") {
        const database = await createTestDatabase()
        cleanups.push(database.drop)
        b = await startTestServer({ databaseUrl: database.url, config: realtime })
        childEnv.URGE_DATABASE_URL = database.url
        childEnv.URGE_DATA_DIR = mkdtempSync(join(tmpdir(), "urge-heartbeat-"))
      } else {
        // SQLite: both instances open the same file (WAL lets them share it).
        const dataDir = mkdtempSync(join(tmpdir(), "urge-heartbeat-"))
        b = await startTestServer({ dataDir, config: realtime })
        childEnv.URGE_DATA_DIR = dataDir
      }
      cleanups.push(() => rmSync(childEnv.URGE_DATA_DIR!, { recursive: true, force: true }))
    })
    afterAll(async () => {
      await b?.stop()
      for (const c of cleanups.reverse()) await c()
    })

    const direct = async (from: SignedUpUser, to: SignedUpUser) => {
      const res = await b.api("POST", "/api/conversations", {
        token: from.accessToken,
        body: { type: "DIRECT", participant_ids: [to.user.id] },
      })
      expect(res.status).toBe(200)
    }
    const offlineOf = (client: NativeClient, user: SignedUpUser) =>
      client.frames.filter((f) => f.event === "user:offline" && f.data.user_id === user.user.id)

    test("its users go offline on the other instance within the timeout; users also connected elsewhere stay online; a restart shows nobody offline", async () => {
      let a = await ChildServer.start(childEnv)
      cleanups.push(() => a.proc.kill("SIGKILL"))
      // Carol watches from B. Bob is only on A; Alice is on A and on B (two devices); Dan blocked Carol.
      const [carol, bob, alice, dan] = await Promise.all([signUp(b), signUp(b), signUp(b), signUp(b)])
      await Promise.all([direct(carol, bob), direct(carol, alice), direct(dan, carol)])
      const blocked = await b.api("POST", `/api/settings/privacy/block/${carol.user.id}`, {
        token: dan.accessToken,
      })
      expect(blocked.status).toBeLessThan(300)

      const carolOnB = await connectNative(b, { token: carol.accessToken })
      await carolOnB.next("hello")
      const aliceOnB = await connectNative(b, { token: alice.accessToken })
      await aliceOnB.next("hello")
      const bobOnA = await connectNative(a as any, { token: bob.accessToken })
      await bobOnA.next("hello")
      const aliceOnA = await connectNative(a as any, { token: alice.accessToken })
      await aliceOnA.next("hello")
      const danOnA = await connectNative(a as any, { token: dan.accessToken })
      await danOnA.next("hello")
      await carolOnB.next("user:online", (f) => f.data.user_id === bob.user.id)
      for (const user of [bob, alice, dan])
        await waitFor(() => b.deps.presence.isOnline(user.user.id), 5000, "B to see A's users online")

      const killedAt = Date.now()
      await a.kill9()
      const offline = await carolOnB.next(
        "user:offline",
        (f) => f.data.user_id === bob.user.id,
        heartbeatTimeoutMs + 5000,
      )
      // Not before the timeout (counted from A's last heartbeat, at most one interval before the kill): a few
      // missed heartbeats must not be taken for a death.
      expect(Date.now() - killedAt).toBeGreaterThanOrEqual(heartbeatTimeoutMs - heartbeatIntervalMs)
      expect(offline.data.last_seen).toMatch(/Z$/)
      expect(b.deps.presence.isOnline(bob.user.id)).toBe(false)
      expect(b.deps.presence.isOnline(dan.user.id)).toBe(false)
      const bobSeen = await b.api("GET", `/api/users/${bob.user.id}`, { token: carol.accessToken })
      expect(bobSeen.body.is_online).toBe(false)
      expect(bobSeen.body.last_seen).toBeTruthy()
      // Alice still has her socket on B; Dan blocked Carol, who never sees his presence.
      expect(b.deps.presence.isOnline(alice.user.id)).toBe(true)
      await Bun.sleep(300)
      expect(offlineOf(carolOnB, alice)).toEqual([])
      expect(offlineOf(carolOnB, dan)).toEqual([])

      // A restarts (a new instance): it learns who is online from B and shows nobody offline.
      a = await ChildServer.start(childEnv)
      const bobBack = await connectNative(a as any, { token: bob.accessToken })
      await bobBack.next("hello")
      const framesBefore = carolOnB.frames.length
      await carolOnB.next(
        "user:online",
        (f) => f.data.user_id === bob.user.id && carolOnB.frames.indexOf(f) >= framesBefore,
      )
      // Well past a timeout of B's and A's watching each other.
      await Bun.sleep(heartbeatTimeoutMs * 2.5)
      expect(offlineOf(carolOnB, alice)).toEqual([])
      expect(offlineOf(carolOnB, bob)).toHaveLength(1)
      expect(offlineOf(bobBack, carol)).toEqual([])
      expect(b.deps.presence.isOnline(alice.user.id)).toBe(true)
      expect(b.deps.presence.isOnline(bob.user.id)).toBe(true)
      const carolSeenFromA = await a.api("GET", `/api/users/${carol.user.id}`, { token: bob.accessToken })
      expect(carolSeenFromA.body.is_online).toBe(true)
      for (const client of [carolOnB, aliceOnB, bobBack]) client.close()
      await a.kill9()
    }, 30_000)

    test("users who reconnected to a restarted instance are not shown offline when the old one is taken for dead", async () => {
      let a = await ChildServer.start(childEnv)
      cleanups.push(() => a.proc.kill("SIGKILL"))
      const [carol, bob, erin] = await Promise.all([signUp(b), signUp(b), signUp(b)])
      await Promise.all([direct(carol, bob), direct(carol, erin)])
      const carolOnB = await connectNative(b, { token: carol.accessToken })
      await carolOnB.next("hello")
      for (const user of [bob, erin]) {
        const client = await connectNative(a as any, { token: user.accessToken })
        await client.next("hello")
      }
      for (const user of [bob, erin])
        await carolOnB.next("user:online", (f) => f.data.user_id === user.user.id)

      // The replacement process is up (a supervisor restarting the service) and Bob's app is on it before the
      // old one is taken for dead; Erin's app never comes back.
      const restarted = await ChildServer.start(childEnv)
      cleanups.push(() => restarted.proc.kill("SIGKILL"))
      const bobBack = await connectNative(restarted as any, { token: bob.accessToken })
      await bobBack.next("hello")
      await waitFor(
        () => b.deps.presence.isOnline(bob.user.id) && instancesHolding(b, bob) === 2,
        5000,
        "B to see Bob on both instances",
      )
      await a.kill9()
      await carolOnB.next("user:offline", (f) => f.data.user_id === erin.user.id, heartbeatTimeoutMs + 5000)
      await Bun.sleep(300)
      expect(offlineOf(carolOnB, bob)).toEqual([])
      expect(b.deps.presence.isOnline(bob.user.id)).toBe(true)
      carolOnB.close()
      bobBack.close()
      await restarted.kill9()
    }, 30_000)

    test("an instance taken for dead and heard again (it was only paused) has its users shown online again", async () => {
      const a = await ChildServer.start(childEnv)
      cleanups.push(() => a.proc.kill("SIGKILL"))
      // Carol watches from B; Bob is only on A; Hank, on A too, hides his online status.
      const [carol, bob, hank] = await Promise.all([signUp(b), signUp(b), signUp(b)])
      await Promise.all([direct(carol, bob), direct(carol, hank)])
      const hidden = await b.api("PUT", "/api/settings/privacy?show_online_status=false", {
        token: hank.accessToken,
      })
      expect(hidden.status).toBeLessThan(300)
      const carolOnB = await connectNative(b, { token: carol.accessToken })
      await carolOnB.next("hello")
      const bobOnA = await connectNative(a as any, { token: bob.accessToken })
      await bobOnA.next("hello")
      const hankOnA = await connectNative(a as any, { token: hank.accessToken })
      await hankOnA.next("hello")
      await carolOnB.next("user:online", (f) => f.data.user_id === bob.user.id)
      await waitFor(() => instancesHolding(b, hank) === 1, 5000, "B to see Hank on A")

      // A stops running (SIGSTOP: a long GC pause, a frozen VM, a partition) for longer than the timeout.
      a.proc.kill("SIGSTOP")
      await carolOnB.next("user:offline", (f) => f.data.user_id === bob.user.id, heartbeatTimeoutMs + 5000)
      expect(b.deps.presence.isOnline(bob.user.id)).toBe(false)
      const framesBefore = carolOnB.frames.length
      // It runs again: its sockets are still open, so its users are online, and B shows it.
      a.proc.kill("SIGCONT")
      await carolOnB.next(
        "user:online",
        (f) => f.data.user_id === bob.user.id && carolOnB.frames.indexOf(f) >= framesBefore,
        heartbeatTimeoutMs + 5000,
      )
      expect(b.deps.presence.isOnline(bob.user.id)).toBe(true)
      const bobSeen = await b.api("GET", `/api/users/${bob.user.id}`, { token: carol.accessToken })
      expect(bobSeen.body.is_online).toBe(true)
      // Hank is tracked again but still shown to nobody.
      await waitFor(() => instancesHolding(b, hank) === 1, 5000, "B to track Hank on A again")
      expect(b.deps.presence.isOnline(hank.user.id)).toBe(false)
      expect(carolOnB.frames.some((f) => f.event === "user:online" && f.data.user_id === hank.user.id)).toBe(
        false,
      )
      // And it stays so: nobody is taken for dead again once both hear each other.
      await Bun.sleep(heartbeatTimeoutMs * 2)
      expect(b.deps.presence.isOnline(bob.user.id)).toBe(true)
      for (const client of [carolOnB, bobOnA, hankOnA]) client.close()
      await a.kill9()
    }, 30_000)
  })

/** On how many instances B sees the user connected. */
const instancesHolding = (server: TestServer, user: SignedUpUser) => {
  // An array while few, a Set past that (realtime.idset.ts).
  const instances = (
    server.deps.presence as unknown as { entries: Map<string, { instances: string[] | Set<string> }> }
  ).entries.get(user.user.id)?.instances
  return !instances ? 0 : Array.isArray(instances) ? instances.length : instances.size
}
