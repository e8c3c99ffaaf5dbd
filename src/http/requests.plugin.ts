import { Elysia } from "elysia"
import type { Logger } from "../logger.ts"

const started = new WeakMap<Request, { id: string; at: number }>()
const requestIdPattern = /^[A-Za-z0-9._-]{1,64}$/

/** Requests in flight, so shutdown can wait for them. */
export type InFlight = { count: number }

/**
 * Request id (kept from `X-Request-Id` when sane, else generated, echoed back) and one JSON log line per
 * request. The line carries the path without its query string, so tokens or codes in a query never reach a log.
 */
export const requestsPlugin = (logger: Logger, logRequests: boolean, inFlight: InFlight) =>
  new Elysia({ name: "requests" })
    .onRequest(({ request, set }) => {
      const given = request.headers.get("x-request-id")
      const id = given && requestIdPattern.test(given) ? given : crypto.randomUUID()
      started.set(request, { id, at: performance.now() })
      set.headers["x-request-id"] = id
      inFlight.count++
    })
    .onAfterResponse({ as: "global" }, ({ request, set }) => {
      inFlight.count--
      const start = started.get(request)
      if (!logRequests || !start) return
      const url = request.url
      const pathStart = url.indexOf("/", url.indexOf("//") + 2)
      const queryStart = url.indexOf("?", pathStart)
      logger.info("request", {
        method: request.method,
        path: url.slice(pathStart, queryStart === -1 ? undefined : queryStart),
        status: typeof set.status === "number" ? set.status : 200,
        duration_ms: Math.round((performance.now() - start.at) * 100) / 100,
        request_id: start.id,
      })
    })
