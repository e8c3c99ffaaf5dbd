/**
 * Lists the benchmarks and runs one: `bun bench/run.ts` (npm run bench) prints them; `bun bench/run.ts <name>
 * [args…]` runs that script with the arguments passed on. There is no "run them all": the messaging bench needs a
 * generated dataset first and the realtime suite takes many minutes, so each is started on purpose.
 */
import { join } from "node:path"

/** A benchmark script under bench/ and what it measures. */
type Bench = { script: string; about: string }

const benches: Record<string, Bench> = {
  startup: {
    script: "startup.ts",
    about: "binary size, start-up time and idle RSS of build variants [--runs N]",
  },
  "messaging:generate": {
    script: "generate-messaging.ts",
    about: "once before messaging: 1,000,000 messages (--db sqlite|postgres)",
  },
  messaging: { script: "messaging.ts", about: "send and read throughput/latency on the generated dataset" },
  "messaging:explain": {
    script: "explain-messaging.ts",
    about: "query plans and timings of the messaging reads",
  },
  realtime: {
    script: "realtime/run.ts",
    about: "1:1, group fanout and idle sockets with baselines [out.jsonl] [--quick]",
  },
  groups: { script: "groups.ts", about: "only-admins-can-post check and GroupResponse for a large group" },
  "auth-check": { script: "auth-check.ts", about: "per-request auth check (token + session lookup)" },
  backup: {
    script: "backup.ts",
    about: "urge backup create/verify/restore on the generated SQLite dataset [--runs N]",
  },
  media: { script: "media.ts", about: "upload (photo against a same-size PDF) and file serving [--runs N]" },
  push: { script: "push.ts", about: "background push fan-out per message beside the send itself" },
}

const [name, ...rest] = process.argv.slice(2)
const bench = name ? benches[name] : undefined
if (!bench) {
  if (name) console.error(`unknown benchmark: ${name}\n`)
  console.log("Usage: bun bench/run.ts <name> [args…]   (figures and method: docs/performance.md)\n")
  for (const [key, { script, about }] of Object.entries(benches))
    console.log(`  ${key.padEnd(20)} bench/${script.padEnd(24)} ${about}`)
  process.exit(name ? 2 : 0)
}
const child = Bun.spawn([process.execPath, join(import.meta.dir, bench.script), ...rest], {
  stdio: ["inherit", "inherit", "inherit"],
})
process.exit(await child.exited)
