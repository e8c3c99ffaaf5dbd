import type { Server } from "bun"

// Requests re-dispatched by the root alias (`/x` → `/api/x`) are new Request objects the server never saw, so
// `server.requestIP` cannot name their peer: the alias records it here.
const aliasedPeers = new WeakMap<Request, string>()

/** Records the peer address of the request a re-dispatched one was made from. */
export function carryPeer(from: Request, to: Request, server: Server<unknown> | null | undefined): void {
  const address = server?.requestIP(from)?.address
  if (address) aliasedPeers.set(to, address)
}

/** The address of the client connected to this request, also for requests re-dispatched by the root alias. */
export function peerAddress(request: Request, server: Server<unknown> | null | undefined): string | null {
  return server?.requestIP(request)?.address ?? aliasedPeers.get(request) ?? null
}
