import { Elysia } from "elysia"
import { authPlugin } from "../auth/auth.plugin.ts"
import type { Deps } from "../deps.ts"
import { syncQuery } from "./sync.schemas.ts"
import { listChangesSince } from "./sync.service.ts"

/** `GET /sync?since=<cursor>`: the caller's change feed (CONTRACT A3). */
export const syncRoutes = (deps: Deps) =>
  new Elysia({ name: "sync", prefix: "/sync", detail: { tags: ["sync"] } })
    .use(authPlugin(deps))
    .get(
      "",
      ({ principal, query }) =>
        listChangesSince(deps, principal.userId, query.since ?? query.cursor, query.limit),
      {
        auth: true,
        query: syncQuery,
        detail: {
          summary: "Everything that changed for the caller since a cursor, in order, with the next cursor",
        },
      },
    )
