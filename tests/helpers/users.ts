import type { TestServer } from "./server.ts"

/** A signed-up user: the API's UserFull, its tokens, and the phone number it signed up with. */
export type SignedUpUser = { user: any; accessToken: string; refreshToken: string; phone: string }

let counter = 0
/** A phone number no other test (or test file running at the same time) uses. */
export function uniquePhone(): string {
  counter++
  // +1 555 then 8 digits from process, time and a counter: unique per call, valid E.164.
  const n = (process.pid * 7919 + Date.now() + counter * 104729) % 100_000_000
  return `+1555${String(n).padStart(8, "0")}`
}

/** The last one-time code the console SMS driver logged for `phone` (what an operator reads), or undefined. */
export function lastCodeFor(server: TestServer, phone: string): string | undefined {
  for (let i = server.logs.length - 1; i >= 0; i--) {
    const line = server.logs[i]!
    if (!line.includes("sms (console driver)") || !line.includes(phone)) continue
    const entry = JSON.parse(line)
    if (entry.to === phone) return /\b(\d{6})\b/.exec(entry.text)?.[1]
  }
  return undefined
}

/** Asks for a sign-in code through the API and returns it (read from the server log). */
export async function requestCode(server: TestServer, phone: string): Promise<string> {
  const sent = await server.api("POST", "/api/auth/send-verification", { body: { phone_number: phone } })
  if (sent.status !== 200) throw new Error(`send-verification ${sent.status}: ${JSON.stringify(sent.body)}`)
  const code = lastCodeFor(server, phone)
  if (!code) throw new Error(`no code logged for ${phone}`)
  return code
}

/**
 * Signs a new user up through the real API, like the app: send code → register → verify-phone → login with
 * the same code, each call after register carrying its token. Unique phone per call; one session.
 */
export async function signUp(
  server: TestServer,
  options: { phone?: string; displayName?: string; password?: string } = {},
): Promise<SignedUpUser> {
  const phone = options.phone ?? uniquePhone()
  const code = await requestCode(server, phone)
  const registered = await server.api("POST", "/api/auth/register", {
    body: {
      phone_number: phone,
      display_name: options.displayName ?? `User ${phone.slice(-4)}`,
      password: options.password,
    },
  })
  if (registered.status !== 200)
    throw new Error(`register ${registered.status}: ${JSON.stringify(registered.body)}`)
  // Like the app, every later call carries the token register gave (so the device keeps one session).
  const token = registered.body.access_token as string
  const verified = await server.api("POST", "/api/auth/verify-phone", {
    token,
    body: { phone_number: phone, code },
  })
  if (verified.status !== 200)
    throw new Error(`verify-phone ${verified.status}: ${JSON.stringify(verified.body)}`)
  const loggedIn = await server.api("POST", "/api/auth/login", {
    token,
    body: { phone_number: phone, verification_code: code },
  })
  if (loggedIn.status !== 200) throw new Error(`login ${loggedIn.status}: ${JSON.stringify(loggedIn.body)}`)
  return {
    user: loggedIn.body.user,
    accessToken: loggedIn.body.access_token,
    refreshToken: loggedIn.body.refresh_token,
    phone,
  }
}
