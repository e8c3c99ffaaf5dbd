import { openapi } from "@elysiajs/openapi"
import { Elysia } from "elysia"
// Embedded in the binary, so /docs works on a network with no internet (the UI would otherwise load from a CDN).
import swaggerBundle from "swagger-ui-dist/swagger-ui-bundle.js" with { type: "file" }
import swaggerCss from "swagger-ui-dist/swagger-ui.css" with { type: "file" }
import favicon from "swagger-ui-dist/favicon-32x32.png" with { type: "file" }
import pkg from "../../package.json" with { type: "json" }

const assets: Record<string, { path: string; type: string }> = {
  "swagger-ui-bundle.js": { path: swaggerBundle, type: "text/javascript; charset=utf-8" },
  "swagger-ui.css": { path: swaggerCss, type: "text/css; charset=utf-8" },
  "favicon.png": { path: favicon, type: "image/png" },
}

/** OpenAPI 3 at /docs/json and Swagger UI at /docs, its assets served by this server. */
export const docsPlugin = () =>
  new Elysia({ name: "docs" })
    .use(
      openapi({
        path: "/docs",
        specPath: "/docs/json",
        provider: "swagger-ui",
        exclude: { paths: [/^\/docs/] },
        swagger: {
          cdn: "/docs/assets/swagger-ui-bundle.js",
          theme: "/docs/assets/swagger-ui.css",
          persistAuthorization: true,
        },
        documentation: {
          info: {
            title: "URGE server",
            version: pkg.version,
            description:
              "REST API of URGE server. Every `/api/*` route also answers at the root (the app's production base URL has no `/api`). Errors are `{detail, code}`; validation errors are 422 with `detail[]`. Real time: native WebSocket at `/ws`, Socket.IO at `/socket.io/`.",
          },
          components: {
            securitySchemes: { bearer: { type: "http", scheme: "bearer", bearerFormat: "JWT" } },
          },
        },
      }),
    )
    .get(
      "/docs/assets/:name",
      ({ params, set }) => {
        const asset = assets[params.name]
        if (!asset) {
          set.status = 404
          return { detail: "Not Found", code: "route.not_found" }
        }
        return new Response(Bun.file(asset.path), {
          headers: { "content-type": asset.type, "cache-control": "public, max-age=86400" },
        })
      },
      { detail: { hide: true } },
    )
