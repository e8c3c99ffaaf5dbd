/**
 * The one error type of the server. Services throw it; `src/http/errors.plugin.ts` maps it to HTTP
 * (status + `{detail, code}`) and the CLI prints `error: <detail>`.
 */
export class AppError extends Error {
  constructor(
    readonly status: number,
    /** Stable machine-readable reason, `<feature>.<reason>`, e.g. `message.not_found`. */
    readonly code: string,
    /** A sentence the app can show as is. */
    readonly detail: string,
    /** Extra response headers (Retry-After, WWW-Authenticate). */
    readonly headers?: Record<string, string>,
  ) {
    super(detail)
    this.name = "AppError"
  }

  toJSON() {
    return { detail: this.detail, code: this.code }
  }
}

/** Shorthands for the statuses features use most. */
export const badRequest = (code: string, detail: string) => new AppError(400, code, detail)
export const unauthorized = (code: string, detail: string) =>
  new AppError(401, code, detail, { "WWW-Authenticate": "Bearer" })
export const forbidden = (code: string, detail: string) => new AppError(403, code, detail)
export const notFound = (code: string, detail: string) => new AppError(404, code, detail)
export const conflict = (code: string, detail: string) => new AppError(409, code, detail)
export const tooManyRequests = (code: string, detail: string, retryAfterSeconds: number) =>
  new AppError(429, code, detail, { "Retry-After": String(Math.max(1, Math.ceil(retryAfterSeconds))) })
export const notImplemented = (detail: string) => new AppError(501, "feature.unavailable", detail)
