import type { TestServer } from "./server.ts"
import { type SignedUpUser, signUp } from "./users.ts"

/** Signs up `n` users. */
export async function signUpMany(server: TestServer, n: number, prefix = "User"): Promise<SignedUpUser[]> {
  const users: SignedUpUser[] = []
  for (let i = 0; i < n; i++) users.push(await signUp(server, { displayName: `${prefix} ${i + 1}` }))
  return users
}

/** Opens (or gets) the direct conversation of `a` with `b`; returns its id. */
export async function directChat(server: TestServer, a: SignedUpUser, b: SignedUpUser): Promise<string> {
  const res = await server.api("POST", "/api/conversations", {
    token: a.accessToken,
    body: { type: "DIRECT", participant_ids: [b.user.id] },
  })
  if (res.status !== 200) throw new Error(`create direct ${res.status}: ${JSON.stringify(res.body)}`)
  return res.body.id
}

/** Creates a group of `founder` with `members`; returns its id. */
export async function group(
  server: TestServer,
  founder: SignedUpUser,
  members: SignedUpUser[],
  name = "Group",
) {
  const res = await server.api("POST", "/api/conversations", {
    token: founder.accessToken,
    body: { type: "GROUP", name, participant_ids: members.map((m) => m.user.id) },
  })
  if (res.status !== 200) throw new Error(`create group ${res.status}: ${JSON.stringify(res.body)}`)
  return res.body.id as string
}

/** Sends a message and returns the stored message (throws unless 200). */
export async function send(
  server: TestServer,
  user: SignedUpUser,
  conversationId: string,
  content: string,
  extra: Record<string, unknown> = {},
) {
  const res = await server.api("POST", "/api/messages", {
    token: user.accessToken,
    body: { conversation_id: conversationId, content, ...extra },
  })
  if (res.status !== 200) throw new Error(`send ${res.status}: ${JSON.stringify(res.body)}`)
  return res.body
}

/** The whole visible history of a conversation for a user, ascending. */
export async function history(
  server: TestServer,
  user: SignedUpUser,
  conversationId: string,
): Promise<any[]> {
  const out: any[] = []
  let after = 0
  for (;;) {
    const res = await server.api(
      "GET",
      `/api/conversations/${conversationId}/messages?since_seq=${after}&limit=200`,
      {
        token: user.accessToken,
      },
    )
    if (res.status !== 200) throw new Error(`history ${res.status}: ${JSON.stringify(res.body)}`)
    out.push(...res.body.messages)
    if (!res.body.has_more) return out
    after = res.body.messages.at(-1).seq
  }
}
