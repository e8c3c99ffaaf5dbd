import { createHash, createHmac, timingSafeEqual } from "node:crypto"
import type { UserRole } from "../accounts/accounts.tables.ts"

/** Claims of an access token (CONTRACT A2): user, role, session, lifetime. */
export type AccessClaims = {
  sub: string
  role: UserRole
  sid: string
  type: "access"
  iat: number
  exp: number
}

const b64url = (data: string | Buffer) => Buffer.from(data).toString("base64url")
// The only header we issue; verification still parses the header and checks `alg` itself.
const issuedHeader = b64url(JSON.stringify({ alg: "HS256", typ: "JWT" }))

/** Signs an HS256 access token for a session; lifetime in seconds from `nowMs`. */
export function signAccessToken(
  secret: string,
  claims: { sub: string; role: UserRole; sid: string },
  nowMs: number,
  ttlSeconds: number,
): string {
  const iat = Math.floor(nowMs / 1000)
  const payload = b64url(JSON.stringify({ ...claims, type: "access", iat, exp: iat + Math.ceil(ttlSeconds) }))
  const body = `${issuedHeader}.${payload}`
  return `${body}.${createHmac("sha256", secret).update(body).digest("base64url")}`
}

/**
 * Checks an access token's form, algorithm and signature and returns its claims (expiry is the caller's
 * business: the realtime reconnect accepts expired ones). Null for anything else: other algorithms, `none`,
 * a bad signature, a refresh token, missing claims.
 */
export function decodeAccessToken(secret: string, token: string): AccessClaims | null {
  if (token.length > 4096) return null
  const parts = token.split(".")
  if (parts.length !== 3) return null
  const [header, payload, signature] = parts as [string, string, string]
  try {
    const h =
      header === issuedHeader ? { alg: "HS256" } : JSON.parse(Buffer.from(header, "base64url").toString())
    // HS256 only: `none`, RS256 (key confusion), HS512 and anything else are refused before any crypto.
    if (!h || typeof h !== "object" || h.alg !== "HS256" || "crit" in h) return null
    const expected = createHmac("sha256", secret).update(`${header}.${payload}`).digest()
    const given = Buffer.from(signature, "base64url")
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return null
    const claims = JSON.parse(Buffer.from(payload, "base64url").toString())
    if (
      !claims ||
      claims.type !== "access" ||
      typeof claims.sub !== "string" ||
      typeof claims.sid !== "string" ||
      typeof claims.exp !== "number"
    )
      return null
    return claims as AccessClaims
  } catch {
    return null
  }
}

/** A new random salt for a session's refresh token. */
export const newRefreshSalt = () => b64url(Buffer.from(crypto.getRandomValues(new Uint8Array(24))))

/**
 * A session's opaque refresh token: HMAC of its id and salt under the server secret (256 bits nobody can
 * guess without the secret). Derivable, so a sign-in from a device that still holds its session gives the
 * same token back instead of opening a second session; only its SHA-256 is stored.
 */
export const refreshTokenFor = (secret: string, sessionId: string, salt: string) =>
  createHmac("sha256", secret).update(`refresh:${sessionId}:${salt}`).digest("base64url")

/** How a refresh token is stored: its SHA-256 (the token itself is high-entropy, so no salt or slow hash is needed). */
export const hashRefreshToken = (token: string) => createHash("sha256").update(token).digest("hex")
