/**
 * What groups cost on the paths they touch: the `only_admins_can_post` check that every group send by a
 * non-admin pays, and rendering GroupResponse (members by role, privacy-aware) for a large group.
 * Run: bun bench/groups.ts (SQLite in a temp directory), or with URGE_TEST_DATABASE_URL set to a Postgres
 * server (a fresh database is created and dropped, as in the tests).
 */
import { scratchDeps } from "./lib.ts"
import { register } from "../src/auth/auth.service.ts"
import { createGroup, getGroup } from "../src/groups/groups.service.ts"

const { deps, close } = await scratchDeps()

const size = Number(process.env.GROUP_SIZE ?? 500)
const userIds: string[] = []
const base = Date.now() % 1e7
for (let i = 0; i < size; i++) {
  const phone = `+1555${String(base * 10 + i)
    .padStart(8, "0")
    .slice(-8)}`
  const { user } = await register(deps, { phone, displayName: `Bench ${i}` }, { ip: null, userAgent: null })
  userIds.push(user.id)
}
const group = await createGroup(deps, userIds[0]!, { name: "Bench", member_ids: userIds.slice(1) })

const time = async (label: string, n: number, run: () => unknown) => {
  for (let i = 0; i < Math.min(n, 200); i++) await run()
  const start = performance.now()
  for (let i = 0; i < n; i++) await run()
  const us = ((performance.now() - start) * 1000) / n
  console.log(`${label.padEnd(52)} ${us.toFixed(1).padStart(9)} µs  (${deps.database.dialect}, n=${n})`)
}

await time(`GET /groups/:id render (${size} members)`, 200, () => getGroup(deps, userIds[1]!, group.id))

await close()
