import { afterAll, beforeAll, describe, expect, test } from "bun:test"
import { type TestServer, startTestServer } from "./helpers/server.ts"
import { waitFor } from "./helpers/wait.ts"

let server: TestServer
beforeAll(async () => {
  server = await startTestServer({ config: { "server.cors_origins": ["https://app.example"] } })
})
afterAll(() => server.stop())

describe("HTTP skeleton", () => {
  test("GET /health checks the database", async () => {
    const res = await server.api("GET", "/health")
    expect(res.status).toBe(200)
    expect(res.body).toMatchObject({ status: "healthy", app: "URGE", database: "ok" })
  })

  test("GET / names the server and links the docs", async () => {
    const res = await server.api("GET", "/")
    expect(res.body).toMatchObject({ app: "URGE", docs: "/docs" })
    expect(typeof res.body.version).toBe("string")
  })

  test("unknown routes are 404 in the error shape, under /api and at the root", async () => {
    for (const path of ["/api/nope", "/nope", "/api"]) {
      const res = await server.api("GET", path)
      expect(res.status).toBe(404)
      expect(res.body).toEqual({ detail: "Not Found", code: "route.not_found" })
    }
  })

  test("every response carries a request id, and a sane given one is kept", async () => {
    const generated = await server.api("GET", "/health")
    expect(generated.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/)
    const kept = await server.api("GET", "/health", { headers: { "x-request-id": "trace-123" } })
    expect(kept.headers.get("x-request-id")).toBe("trace-123")
    const replaced = await server.api("GET", "/health", {
      headers: { "x-request-id": "bad id\twith spaces" },
    })
    expect(replaced.headers.get("x-request-id")).not.toBe("bad id\twith spaces")
  })

  test("one JSON log line per request: method, path without query, status, duration", async () => {
    await server.api("GET", "/nope?token=secret-value", { headers: { "x-request-id": "log-check" } })
    const line = await waitFor(() =>
      server.logs.map((l) => JSON.parse(l)).find((l) => l.request_id === "log-check"),
    )
    expect(line).toMatchObject({ msg: "request", method: "GET", path: "/api/nope", status: 404 })
    expect(typeof line.duration_ms).toBe("number")
    expect(server.logs.join("\n")).not.toContain("secret-value")
  })

  test("CORS answers the configured origin only", async () => {
    const allowed = await fetch(`${server.url}/health`, { headers: { origin: "https://app.example" } })
    expect(allowed.headers.get("access-control-allow-origin")).toBe("https://app.example")
    const other = await fetch(`${server.url}/health`, { headers: { origin: "https://evil.example" } })
    expect(other.headers.get("access-control-allow-origin")).not.toBe("https://evil.example")
  })
})

describe("API docs", () => {
  test("OpenAPI 3 document at /docs/json", async () => {
    const res = await server.api("GET", "/docs/json")
    expect(res.status).toBe(200)
    expect(res.body.openapi).toMatch(/^3\./)
    expect(res.body.paths["/health"]).toBeDefined()
  })

  test("request bodies are documented as JSON with their schema", async () => {
    const doc = (await server.api("GET", "/docs/json")).body
    const body = doc.paths["/api/auth/register"].post.requestBody
    expect(body.content["application/json"].schema.properties.phone_number).toBeDefined()
  })

  test("the docs page loads its assets from this server, not a CDN", async () => {
    const page = await fetch(`${server.url}/docs`)
    const html = await page.text()
    expect(page.headers.get("content-type")).toContain("text/html")
    const sources = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!)
    expect(sources.length).toBeGreaterThan(0)
    for (const src of sources) {
      expect(src.startsWith("/")).toBe(true)
      const asset = await fetch(server.url + src)
      expect(asset.status).toBe(200)
      expect((await asset.arrayBuffer()).byteLength).toBeGreaterThan(1000)
    }
  })
})
