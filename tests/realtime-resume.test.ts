import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { connectNative, type Frame } from "./helpers/realtime.ts"
import { type TestServer, startTestServer } from "./helpers/server.ts"
import { signUp } from "./helpers/users.ts"
import { waitFor } from "./helpers/wait.ts"

let server: TestServer
beforeAll(async () => {
  // No fsync per commit: the burst is quick, and commits keep landing while a resumed connection replays.
  server = await startTestServer({ config: { "database.durability": "normal" } })
})
afterAll(() => server.stop())

describe("resume on /ws from a cursor", () => {
  test("the connection is killed during a burst; reconnecting with the last cursor gives every message once, in order", async () => {
    const [alice, bob] = await Promise.all([signUp(server), signUp(server)])
    const chat = await server.api("POST", "/api/conversations", {
      token: alice.accessToken,
      body: { type: "DIRECT", participant_ids: [bob.user.id] },
    })
    const total = 1500
    const aliceSocket = await connectNative(server, { token: alice.accessToken })
    await aliceSocket.next("hello")
    const first = await connectNative(server, { token: bob.accessToken })
    await first.next("hello")

    // What the client processed before its connection died, and the cursor it kept.
    const processed: Frame[] = []
    let lastCursor = ""
    let killed = false
    first.ws.addEventListener("message", (e) => {
      if (killed) return
      const frame = JSON.parse(String(e.data)) as Frame
      if (frame.event !== "message:received") return
      processed.push(frame)
      lastCursor = frame.cursor!
    })
    /** Alice's socket sends without waiting for acks (the server commits them in batches). */
    const send = (from: number, to: number) => {
      for (let i = from; i < to; i++)
        aliceSocket.ws.send(
          JSON.stringify({
            event: "message:sent",
            id: i,
            data: { conversation_id: chat.body.id, content: `m${i}`, client_message_id: `burst-${i}` },
          }),
        )
    }
    const acked = (n: number) =>
      waitFor(() => aliceSocket.frames.filter((f) => f.event === "ack").length >= n, 20_000, `${n} acks`)

    // The burst starts; Bob's connection dies in the middle of it.
    send(0, 200)
    await waitFor(() => processed.length >= 40, 10_000, "the burst to start arriving")
    killed = true
    first.ws.terminate?.() ?? first.ws.close()
    const keptCursor = lastCursor
    // While he is away a backlog of several replay pages builds up; the last wave goes out as he comes back,
    // so live events land while his connection replays the backlog page by page: a gap or a duplicate would
    // show there. (On Postgres the replay's queries are real I/O, so the last wave does land mid-replay; on
    // SQLite the whole replay runs before the server reads another frame, and this checks the plain path.)
    send(200, 1200)
    await acked(1200)
    const second = await connectNative(server, { token: bob.accessToken, cursor: keptCursor })
    send(1200, total)
    await acked(total)
    await waitFor(
      () => second.frames.filter((f) => f.event === "message:received").length + processed.length >= total,
      10_000,
      "every message after the resume",
    )
    await Bun.sleep(100) // a duplicate would arrive right behind the last one
    const resumed = second.frames.filter((f) => f.event === "message:received")
    // No gap, no duplicate, in order: the seqs seen are exactly 1..total, ascending.
    const seqs = [...processed, ...resumed].map((f) => f.data.seq)
    expect(seqs).toEqual(Array.from({ length: total }, (_, i) => i + 1))
    expect(resumed.every((f) => f.cursor! > "")).toBe(true)
    expect(second.frames.some((f) => f.event === "resumed")).toBe(true)
    second.close()
    aliceSocket.close()
    expect(aliceSocket.frames.some((f) => f.event === "error")).toBe(false)
  }, 30_000)

  test("a cursor the server did not issue: an error frame, then close 1011", async () => {
    const alice = await signUp(server)
    const client = await connectNative(server, { token: alice.accessToken, cursor: "bogus" })
    const closed = await client.closed
    expect(closed.code).toBe(1011)
    expect(client.frames.find((f) => f.event === "error")?.data).toMatchObject({
      code: "sync.invalid_cursor",
      status: 400,
    })
  })
})
