/**
 * Cost of the per-request auth check: signature + claims in memory, then the session lookup.
 * Run: bun bench/auth-check.ts (SQLite in a temp directory), or with URGE_TEST_DATABASE_URL set to a Postgres
 * server (a fresh database is created and dropped, as in the tests).
 */
import { scratchDeps } from "./lib.ts"
import { verifyAccessToken } from "../src/auth/auth.plugin.ts"
import { register } from "../src/auth/auth.service.ts"
import { decodeAccessToken } from "../src/auth/tokens.ts"

const { deps, close } = await scratchDeps()
const phone = `+1555${String(Date.now() % 1e8).padStart(8, "0")}`
const { access_token } = await register(deps, { phone }, { ip: null, userAgent: null })

const time = async (label: string, n: number, run: () => unknown) => {
  for (let i = 0; i < Math.min(n, 1000); i++) await run()
  const start = performance.now()
  for (let i = 0; i < n; i++) await run()
  const us = ((performance.now() - start) * 1000) / n
  console.log(`${label.padEnd(46)} ${us.toFixed(2).padStart(8)} µs/check  (${deps.database.dialect}, n=${n})`)
}
await time("signature + claims (decodeAccessToken)", 100_000, () =>
  decodeAccessToken(deps.jwtSecret, access_token),
)
await time("full check (verifyAccessToken: + session lookup)", 20_000, () =>
  verifyAccessToken(deps, access_token),
)
// Concurrency: what a busy instance sees (many requests checking at once).
const start = performance.now()
const total = 20_000
for (let i = 0; i < total / 100; i++)
  await Promise.all(Array.from({ length: 100 }, () => verifyAccessToken(deps, access_token)))
console.log(
  `${"full check, 100 concurrent".padEnd(46)} ${(((performance.now() - start) * 1000) / total).toFixed(2).padStart(8)} µs/check  (throughput view)`,
)
await close()
