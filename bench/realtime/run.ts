/**
 * Runs every realtime scenario of issue 5 in sequence (each bounded in time and count) and appends one JSON
 * line per figure to the output file. Usage: bun bench/realtime/run.ts [out.jsonl] [--quick]
 */
import { appendFileSync } from "node:fs"
import { loadavg } from "node:os"
import { join } from "node:path"
import { bun } from "./lib.ts"

const out = process.argv.find((a) => a.endsWith(".jsonl")) ?? `/tmp/urge-bench-realtime-${Date.now()}.jsonl`
const quick = process.argv.includes("--quick")
const dir = import.meta.dir
const all = "native:ws,native:rest,socket.io:ws,socket.io:rest,bun-bare:ws,node-sio:ws"

const steps: string[][] = quick
  ? [
      ["idle.ts", "--sockets=1000"],
      ["messages.ts", "direct", "--sockets=1000", "--rate=200", "--seconds=3", `--only=${all}`],
      ["messages.ts", "group", "--members=200", "--rate=10", "--count=20", "--burst=10", `--only=${all}`],
    ]
  : [
      ["messages.ts", "direct", "--sockets=10000", "--rate=1000", "--seconds=10", `--only=${all}`],
      ["messages.ts", "group", "--members=1000", "--rate=20", "--count=100", "--burst=50", `--only=${all}`],
      ["messages.ts", "group", "--members=10000", "--rate=2", "--count=20", "--burst=10", `--only=${all}`],
      [
        "messages.ts",
        "group",
        "--members=1000",
        "--rate=20",
        "--count=20",
        "--burst=0",
        "--presence=on",
        "--only=native:rest,socket.io:rest",
      ],
      ["idle.ts", "--sockets=19500"],
    ]

appendFileSync(out, JSON.stringify({ run: new Date().toISOString(), quick, loadavg: loadavg() }) + "\n")
for (const [script, ...args] of steps) {
  console.error(`== ${script} ${args.join(" ")}`)
  const child = Bun.spawn([bun, join(dir, script!), ...args], { stdout: "pipe", stderr: "inherit" })
  const text = await new Response(child.stdout).text()
  await child.exited
  for (const line of text.split("\n").filter((l) => l.startsWith("{"))) {
    appendFileSync(out, line + "\n")
    console.log(line.slice(0, 300))
  }
}
console.error(`figures in ${out}`)
