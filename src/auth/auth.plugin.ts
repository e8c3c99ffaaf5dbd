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
  if (now - session.last_used_at > touchEveryMs) touchLater(deps, claims.sid)
  return { userId: session.user_id, role: session.role, sessionId: claims.sid }
}

/** How long the sessions to touch are collected before one statement writes them. */
const touchFlushMs = 1000
const pendingTouches = new WeakMap<Deps, Set<string>>()

/**
 * Best effort and off the request's path: a lost write only makes "last used" a little older. Sessions due a
 * touch are collected for a second and written by one statement (at that moment's time): after a pause every
 * client's first request is due one, and one commit each (a WAL flush) cost Postgres ~2.8 ms of CPU per
 * request over the first seconds of a read run (bench/reads-cpu.ts, 158 sessions).
 */
function touchLater(deps: Deps, sessionId: string) {
  let pending = pendingTouches.get(deps)
  if (!pending) pendingTouches.set(deps, (pending = new Set()))
  if (pending.size === 0) setTimeout(() => void flushTouches(deps), touchFlushMs).unref()
  pending.add(sessionId)
}

async function flushTouches(deps: Deps) {
  const pending = pendingTouches.get(deps)
  if (!pending?.size) return
  const ids = [...pending]
  pending.clear()
  const now = deps.clock.now()
  for (let i = 0; i < ids.length; i += 1000)
    await touchLastUsed(deps.database, ids.slice(i, i + 1000), now, deps.config.database.durability).catch(
      () => {},
    )
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
