import { cors } from "@elysiajs/cors"
import type { Server } from "bun"
import { Elysia } from "elysia"
import type { Deps } from "./deps.ts"
import { AppError } from "./errors.ts"
import { docsPlugin } from "./http/docs.plugin.ts"
import { errorsPlugin } from "./http/errors.plugin.ts"
import { carryPeer } from "./http/peer.ts"
import { type InFlight, requestsPlugin } from "./http/requests.plugin.ts"
import { healthRoutes } from "./health/health.routes.ts"
import { authRoutes } from "./auth/auth.routes.ts"
import { settingsRoutes } from "./settings/settings.routes.ts"
import { usersRoutes } from "./accounts/users.routes.ts"
import { accountRoutes } from "./accounts/account.routes.ts"
import { conversationsRoutes } from "./conversations/conversations.routes.ts"
import { messagesRoutes } from "./messages/messages.routes.ts"
import { syncRoutes } from "./sync/sync.routes.ts"
import { groupsRoutes } from "./groups/groups.routes.ts"
import { mediaRoutes } from "./media/media.routes.ts"
import { pushRoutes } from "./push/push.routes.ts"

/** Paths that live at the root; every other path is an alias of the same path under /api (CONTRACT A1). */
const rootPath = /^\/(?:$|api(?:\/|$)|health$|docs(?:\/|$)|ws$|socket\.io\/)/

/** The feature routes, mounted under /api. */
const apiRoutes = (deps: Deps) =>
  new Elysia({ name: "api", prefix: "/api" })
    // Before the JSON guard: media routes parse multipart and raw bodies (each names its parser).
    .use(mediaRoutes(deps))
    // Bodies are JSON unless a route says otherwise. Parsing itself is the root's onParse (limits, checks);
    // naming the parser here is what lets OpenAPI document each request body as application/json.
    .guard({ parse: { fn: "json" } as never })
    .use(authRoutes(deps))
    .use(settingsRoutes(deps))
    .use(usersRoutes(deps))
    .use(accountRoutes(deps))
    .use(conversationsRoutes(deps))
    .use(messagesRoutes(deps))
    .use(syncRoutes(deps))
    .use(groupsRoutes(deps))
    .use(pushRoutes(deps))

/** Answers `/ws` and `/socket.io/` (the realtime protocols), or returns undefined for every other path. */
export type RealtimePaths = (request: Request, server: Server<unknown>) => Promise<Response> | undefined

/** The Elysia root: error mapping, request log, CORS, JSON limits, docs, health and every feature under /api. */
export function createApp(deps: Deps, inFlight: InFlight = { count: 0 }, realtimePaths?: RealtimePaths) {
  const { config, logger } = deps
  const bodyLimit = config.server.body_limit
  const origins = config.server.cors_origins

  const self: { app?: { handle(request: Request): Promise<Response> } } = {}
  const app = new Elysia({ name: "urge" })
    // The app's production build calls the API without /api: answer it as if it had.
    .onRequest(({ request, server }) => {
      const url = request.url
      const pathStart = url.indexOf("/", url.indexOf("//") + 2)
      if (rootPath.test(url.slice(pathStart, url.indexOf("?", pathStart) >>> 0))) return
      const aliased = new Request(url.slice(0, pathStart) + "/api" + url.slice(pathStart), request)
      carryPeer(request, aliased, server)
      return self.app!.handle(aliased)
    })
    // Before the request log and in-flight count: an upgrade or a held long-poll is not a request to wait for.
    .onRequest(({ request, server }) => realtimePaths?.(request, server!))
    .use(errorsPlugin(logger))
    // NUL characters: Postgres text cannot hold them (SQLite can), so they are refused at the edge, the same
    // on both databases: in a path it is no resource of ours (404), in a query or body a bad value (422).
    .onRequest(({ request }) => {
      const url = request.url
      const nul = url.indexOf("%00")
      if (nul === -1) return
      const query = url.indexOf("?")
      if (query === -1 || nul < query) throw new AppError(404, "route.not_found", "Not Found")
      throw nulRefused()
    })
    .use(requestsPlugin(logger, config.log.requests, inFlight))
    .use(corsPlugin(origins))
    // JSON bodies: size-limited, and an empty body reads as no body (several app calls POST without one).
    .onParse({ as: "global" }, async ({ request, contentType }) => {
      // No content type: a bodyless POST/PUT (the app sends several); other types go to their route's parser.
      if (!contentType) return {}
      if (!contentType.startsWith("application/json")) return
      const declared = Number(request.headers.get("content-length") ?? 0)
      if (declared > bodyLimit) throw tooLarge(bodyLimit)
      const text = await request.text()
      if (text.length > bodyLimit) throw tooLarge(bodyLimit)
      if (text.trim() === "") return {}
      try {
        // Only a body that may hold a "toString"/"valueOf" key or a NUL pays for the checking reviver.
        if (!/"(?:toString|valueOf)"|\\u0000/.test(text)) return JSON.parse(text)
        return JSON.parse(text, checkedValue)
      } catch (error) {
        if (error instanceof AppError) throw error
        throw new AppError(400, "request.malformed", "The request body is not valid JSON.")
      }
    })
    .use(docsPlugin())
    .use(healthRoutes(deps))
    .use(apiRoutes(deps))
  self.app = app
  return app
}

/** CORS for the configured origins; none configured: no CORS headers at all. */
const corsPlugin = (origins: string[]) =>
  (origins.length
    ? cors({ origin: origins.includes("*") ? true : origins, exposeHeaders: ["x-request-id", "retry-after"] })
    : new Elysia({ name: "cors-off" })) as unknown as Elysia

const tooLarge = (limit: number) =>
  new AppError(413, "request.too_large", `The request body is larger than ${limit} bytes.`)

/**
 * JSON.parse reviver for the rare suspicious body. A "toString"/"valueOf" key that is not a function makes
 * Elysia's validation message builder throw (a 500 instead of a 422); no field of ours has these names, so
 * they are dropped. NUL characters are refused (Postgres text cannot store them).
 */
const checkedValue = (key: string, value: unknown) => {
  if (key === "toString" || key === "valueOf") return undefined
  if ((typeof value === "string" && value.includes("\0")) || key.includes("\0")) throw nulRefused()
  return value
}

const nulRefused = () => new AppError(422, "request.invalid", "Text must not contain NUL characters.")
