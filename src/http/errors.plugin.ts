import { Elysia, ValidationError } from "elysia"
import { AppError } from "../errors.ts"
import type { Logger } from "../logger.ts"

/** One validation problem, in the shape the app reads (`detail[0].msg`). */
type ValidationDetail = { loc: (string | number)[]; msg: string; type: string }

/**
 * The one place errors become HTTP responses (CONTRACT A1): AppError → its status and `{detail, code}`;
 * validation → 422 with a list; malformed JSON → 400; unknown route → 404; anything else → 500 without internals.
 */
export const errorsPlugin = (logger: Logger) =>
  new Elysia({ name: "errors" }).onError({ as: "global" }, ({ code, error: raised, set, request, path }) => {
    // Elysia wraps whatever a parser throws in a ParseError: keep our own error (413 too large) as thrown.
    const error = code === "PARSE" && raised.cause instanceof AppError ? raised.cause : raised
    if (error instanceof AppError) {
      set.status = error.status
      if (error.headers) Object.assign(set.headers, error.headers)
      return error.toJSON()
    }
    if (code === "VALIDATION" && error instanceof ValidationError) {
      set.status = 422
      const detail = validationDetails(error)
      const first = detail[0]!
      const field = first.loc.filter((p) => p !== "body").join(".")
      return { detail, message: field ? `${field}: ${first.msg}` : first.msg, code: "request.invalid" }
    }
    if (code === "NOT_FOUND") {
      set.status = 404
      return { detail: "Not Found", code: "route.not_found" }
    }
    if (code === "PARSE") {
      set.status = 400
      return { detail: "The request body is not valid JSON.", code: "request.malformed" }
    }
    set.status = 500
    logger.error("unhandled error", {
      method: request.method,
      path,
      error: error instanceof Error ? (error.stack ?? error.message) : String(error),
    })
    return { detail: "Internal server error", code: "internal" }
  })

function validationDetails(error: ValidationError): ValidationDetail[] {
  const custom = typeof error.customError === "string" ? error.customError : undefined
  let all: ValidationError["all"]
  try {
    all = error.all
  } catch {
    // Elysia's summary of some values throws (an object whose toString is not a function): say less.
    all = []
  }
  const list = all.length ? all : [{ path: "", message: error.message } as (typeof all)[number]]
  return list.map((e) => {
    const path = ("path" in e && typeof e.path === "string" ? e.path : "").split("/").filter(Boolean)
    const schemaError =
      "schema" in e && typeof e.schema?.error === "string" ? (e.schema.error as string) : undefined
    const missing = "value" in e && e.value === undefined && path.length > 0
    return {
      loc: [error.type, ...path.map((p) => (/^\d+$/.test(p) ? Number(p) : p))],
      msg: schemaError ?? custom ?? (missing ? "Field required" : humanize(e.message)),
      type: missing ? "missing" : "invalid",
    }
  })
}

const humanize = (message: string) => message.charAt(0).toUpperCase() + message.slice(1)
