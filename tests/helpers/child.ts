import { join } from "node:path"
import type { ApiOptions, ApiResponse } from "./server.ts"

/** A `urge serve` child process and a small HTTP client for it (shaped like TestServer for signUp). */
export class ChildServer {
  logs: string[] = []
  base = ""
  private constructor(readonly proc: ReturnType<typeof Bun.spawn>) {}

  static async start(env: Record<string, string>): Promise<ChildServer> {
    const proc = Bun.spawn([process.execPath, join(import.meta.dir, "..", "..", "cli", "main.ts"), "serve"], {
      env: { ...process.env, ...env },
      stdout: "pipe",
      stderr: "inherit",
    })
    const child = new ChildServer(proc)
    const ready = Promise.withResolvers<void>()
    ;(async () => {
      const decoder = new TextDecoder()
      let buffer = ""
      for await (const chunk of proc.stdout as ReadableStream<Uint8Array>) {
        buffer += decoder.decode(chunk, { stream: true })
        let nl: number
        while ((nl = buffer.indexOf("\n")) >= 0) {
          const line = buffer.slice(0, nl)
          buffer = buffer.slice(nl + 1)
          child.logs.push(line)
          if (line.includes('"msg":"listening"')) {
            child.base = JSON.parse(line).url
            ready.resolve()
          }
        }
      }
      ready.reject(new Error(`server exited before listening:\n${child.logs.join("\n")}`))
    })()
    await ready.promise
    return child
  }

  async api<T = any>(method: string, path: string, options: ApiOptions = {}): Promise<ApiResponse<T>> {
    const headers: Record<string, string> = { ...options.headers }
    if (options.token) headers.authorization = `Bearer ${options.token}`
    if (options.body !== undefined) headers["content-type"] = "application/json"
    const res = await fetch(this.base + path, {
      method,
      headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
    })
    const text = await res.text()
    return { status: res.status, body: text ? JSON.parse(text) : null, headers: res.headers }
  }

  /** WebSocket URL for a path (`/ws`). */
  wsUrl(path: string): string {
    return this.base.replace(/^http/, "ws") + path
  }

  async kill9() {
    this.proc.kill("SIGKILL")
    await this.proc.exited
  }
}
