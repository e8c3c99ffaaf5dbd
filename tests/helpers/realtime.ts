import { io, type Socket } from "socket.io-client"
import type { TestServer } from "./server.ts"

/** A frame the server sent on /ws. */
export type Frame = { event: string; data?: any; id?: string | number; cursor?: string }

/** A native /ws client that records every frame: wait for frames, send events, await their acks. */
export type NativeClient = {
  ws: WebSocket
  frames: Frame[]
  /** Resolves with the close event (code, reason). */
  closed: Promise<{ code: number; reason: string }>
  /** The first frame (from `from` on) matching, waiting for it if needed. */
  next(event: string, match?: (frame: Frame) => boolean, timeoutMs?: number): Promise<Frame>
  /** Sends `{event, data, id}` and resolves with the server's `ack` or `error` frame for that id. */
  request(event: string, data?: unknown): Promise<Frame>
  send(event: string, data?: unknown): void
  close(): void
}

let requestIds = 0

/** Opens /ws with the given query (`token`, `cursor`) and resolves once the socket is open. */
export async function connectNative(
  server: TestServer,
  query: Record<string, string>,
): Promise<NativeClient> {
  const ws = new WebSocket(server.wsUrl(`/ws?${new URLSearchParams(query)}`))
  const frames: Frame[] = []
  const waiters = new Set<() => void>()
  ws.onmessage = (e) => {
    frames.push(JSON.parse(String(e.data)))
    for (const wake of waiters) wake()
  }
  const closed = new Promise<{ code: number; reason: string }>((resolve) => {
    ws.addEventListener("close", (e) => {
      resolve({ code: e.code, reason: e.reason })
      for (const wake of waiters) wake()
    })
  })
  await new Promise<void>((resolve, reject) => {
    ws.addEventListener("open", () => resolve())
    ws.addEventListener("error", () => reject(new Error("websocket error before open")))
  })
  const next: NativeClient["next"] = (event, match = () => true, timeoutMs = 3000) =>
    new Promise((resolve, reject) => {
      const check = () => {
        const found = frames.find((f) => f.event === event && match(f))
        if (found) {
          waiters.delete(check)
          clearTimeout(timer)
          resolve(found)
        }
      }
      const timer = setTimeout(() => {
        waiters.delete(check)
        reject(
          new Error(
            `no "${event}" frame within ${timeoutMs} ms; got ${JSON.stringify(frames.map((f) => f.event))}`,
          ),
        )
      }, timeoutMs)
      waiters.add(check)
      check()
    })
  return {
    ws,
    frames,
    closed,
    next,
    send: (event, data) => ws.send(JSON.stringify({ event, data })),
    request(event, data) {
      const id = `r${++requestIds}`
      ws.send(JSON.stringify({ event, data, id }))
      return Promise.race([next("ack", (f) => f.id === id), next("error", (f) => f.id === id)])
    },
    close: () => ws.close(),
  }
}

/** A Socket.IO client configured as the URGE app configures it (CONTRACT §3), recording every event. */
export type SocketIoClient = {
  socket: Socket
  events: { name: string; args: any[] }[]
  next(name: string, match?: (args: any[]) => boolean, timeoutMs?: number): Promise<any[]>
  /** Emits with an ack callback and resolves with the ack. */
  request(name: string, payload: unknown): Promise<any>
  close(): void
}

/** Connects like the app: `{auth: {token}, transports: ['websocket', 'polling'], forceNew: true, …}`. */
export function socketIoClient(
  server: TestServer,
  token: string,
  transports: ("websocket" | "polling")[] = ["websocket", "polling"],
): SocketIoClient {
  const socket = io(server.url, {
    auth: { token },
    transports,
    reconnection: true,
    reconnectionAttempts: 5,
    reconnectionDelay: 1000,
    reconnectionDelayMax: 5000,
    timeout: 20000,
    forceNew: true,
  })
  const events: { name: string; args: any[] }[] = []
  const waiters = new Set<() => void>()
  socket.onAny((name: string, ...args: any[]) => {
    events.push({ name, args })
    for (const wake of waiters) wake()
  })
  return {
    socket,
    events,
    next: (name, match = () => true, timeoutMs = 3000) =>
      new Promise((resolve, reject) => {
        const check = () => {
          const found = events.find((e) => e.name === name && match(e.args))
          if (found) {
            waiters.delete(check)
            clearTimeout(timer)
            resolve(found.args)
          }
        }
        const timer = setTimeout(() => {
          waiters.delete(check)
          reject(
            new Error(
              `no "${name}" within ${timeoutMs} ms; got ${JSON.stringify(events.map((e) => e.name))}`,
            ),
          )
        }, timeoutMs)
        waiters.add(check)
        check()
      }),
    request: (name, payload) => socket.timeout(3000).emitWithAck(name, payload),
    close: () => void socket.close(),
  }
}

/** Resolves when the Socket.IO client connects; rejects with the connect_error. */
export function connected(client: SocketIoClient): Promise<void> {
  return new Promise((resolve, reject) => {
    if (client.socket.connected) return resolve()
    client.socket.once("connect", () => resolve())
    client.socket.once("connect_error", reject)
  })
}
