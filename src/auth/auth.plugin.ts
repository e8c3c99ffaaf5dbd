import { Elysia } from "elysia"
import type { Deps } from "../deps.ts"
import { unauthorized } from "../errors.ts"
import type { Principal } from "./auth.service.ts"
import { findSessionForAuth, touchLastUsed } from "./sessions.repository.ts"
import { decodeAccessToken } from "./tokens.ts"

export type { Principal } from "./auth.service.ts"

/** How often (at most) a session's `last_used_at` is written from ordinary requests. */
const touchEveryMs = 60_000

/**
 * Checks an access token and returns who it speaks for, or throws AppError 401 (with `WWW-Authenticate`).
 * The signature (HS256 only) and claims are checked in memory; then one primary-key lookup of the session
 * (joined to the user for the current role) makes an ended session's tokens stop at once, on every instance.
 * `allowExpired` (realtime reconnect, CONTRACT A4): an expired token is accepted while its session is live,
 * up to the refresh lifetime after its expiry.
 */
export async function verifyAccessToken(
  deps: Deps,
  token: string,
  options: { allowExpired?: boolean } = {},
): Promise<Principal> {
  const claims = decodeAccessToken(deps.jwtSecret, token)
  if (!claims) throw unauthorized("auth.invalid_token", "Could not validate credentials")
  const now = deps.clock.now()
  const expiredFor = now - claims.exp * 1000
  if (expiredFor >= 0) {
    if (!options.allowExpired) throw unauthorized("auth.token_expired", "Token has expired")
    if (expiredFor >= deps.config.auth.refresh_token_ttl * 1000)
      throw unauthorized("auth.token_expired", "Token has expired")
  }
  const session = await findSessionForAuth(deps.database, claims.sid)
  if (!session || session.user_id !== claims.sub || session.ended_at !== null || session.expires_at <= now)
    throw unauthorized("auth.session_ended", "This session has ended. Please log in again.")
  if (now - session.last_used_at > touchEveryMs)
    touchLastUsed(deps.database, claims.sid, now, deps.config.database.durability)
  return { userId: session.user_id, role: session.role, sessionId: claims.sid }
}

/** The bearer token of a request, or null. */
export function bearerToken(header: string | null): string | null {
  if (!header) return null
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header)
  return match ? match[1]! : null
}

/**
 * Authentication as a named plugin with a macro: a route with `{ auth: true }` gets `principal` in its
 * context, or the request ends with 401 `{detail, code}` and `WWW-Authenticate: Bearer`.
 */
export const authPlugin = (deps: Deps) =>
  new Elysia({ name: "auth", seed: "auth" }).macro({
    auth: {
      detail: { security: [{ bearer: [] }] },
      async resolve({ request }) {
        const token = bearerToken(request.headers.get("authorization"))
        if (!token) throw unauthorized("auth.not_authenticated", "Not authenticated")
        return { principal: await verifyAccessToken(deps, token) }
      },
    },
  })
