import type { Server } from "bun"
import type { Deps } from "../deps.ts"
import { peerAddress } from "../http/peer.ts"
import { bearerToken, verifyAccessToken } from "./auth.plugin.ts"
import type { ClientInfo } from "./auth.service.ts"

/**
 * The client's IP: the socket's peer, or with `server.trust_proxy` the last `X-Forwarded-For` entry (the one
 * our own proxy appended; earlier entries come from the client and can be forged).
 */
export function clientIp(deps: Deps, request: Request, server: Server<unknown> | null): string | null {
  if (deps.config.server.trust_proxy) {
    const forwarded = request.headers.get("x-forwarded-for")
    const last = forwarded?.split(",").at(-1)?.trim()
    if (last) return last.slice(0, 64)
  }
  return peerAddress(request, server)
}

/** Where a request comes from: IP, user agent and the optional device fields of a login body. */
export function clientInfo(
  deps: Deps,
  request: Request,
  server: Server<unknown> | null,
  body?: { device_name?: string; platform?: string },
): ClientInfo {
  return {
    ip: clientIp(deps, request, server),
    userAgent: request.headers.get("user-agent"),
    deviceName: body?.device_name,
    platform: body?.platform,
  }
}

/**
 * The live session a request's bearer token names, even if the token expired (the app sends whatever token
 * it stored with every request, sign-in routes included), or undefined. Never an error: sign-in routes
 * do not require a token.
 */
export async function bearerSession(deps: Deps, request: Request): Promise<ClientInfo["session"]> {
  const token = bearerToken(request.headers.get("authorization"))
  if (!token) return undefined
  try {
    const principal = await verifyAccessToken(deps, token, { allowExpired: true })
    return { userId: principal.userId, sessionId: principal.sessionId }
  } catch {
    return undefined
  }
}
