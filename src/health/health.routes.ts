import { Elysia, t } from "elysia"
import pkg from "../../package.json" with { type: "json" }
import { pingDatabase } from "../db/database.ts"
import type { Deps } from "../deps.ts"

/** `GET /` (name, version, docs) and `GET /health` (liveness plus a database round trip). */
export const healthRoutes = (deps: Deps) =>
  new Elysia({ name: "health", detail: { tags: ["health"] } })
    .get("/", () => ({ message: "URGE server", app: "URGE", version: pkg.version, docs: "/docs" }), {
      detail: { summary: "Server name, version and docs link" },
    })
    .get(
      "/health",
      async ({ set }) => {
        try {
          await pingDatabase(deps.database.db)
          return { status: "healthy" as const, app: "URGE", version: pkg.version, database: "ok" as const }
        } catch (error) {
          deps.logger.error("health check: database unreachable", { error: (error as Error).message })
          set.status = 503
          return { detail: "The database is unreachable.", code: "health.database_unavailable" }
        }
      },
      {
        detail: { summary: "Liveness and database check" },
        response: {
          200: t.Object({
            status: t.Literal("healthy"),
            app: t.String(),
            version: t.String(),
            database: t.Literal("ok"),
          }),
          503: t.Object({ detail: t.String(), code: t.String() }),
        },
      },
    )
