/**
 * Turns the JSON lines of run.ts into the markdown tables of docs/performance.md ("Real time").
 * Usage: bun bench/realtime/report.ts results.jsonl
 */
export {}

const file = process.argv[2]
if (!file) throw new Error("usage: report.ts results.jsonl")
const lines = (await Bun.file(file).text())
  .split("\n")
  .filter(Boolean)
  .map((l) => JSON.parse(l))

const name = (f: any) =>
  f.server === "urge"
    ? `URGE ${f.protocol === "native" ? "native /ws" : "Socket.IO"}, send over ${f.via === "rest" ? "REST" : "WebSocket"}`
    : f.server === "bun-bare"
      ? "baseline: bare Bun.serve pub/sub"
      : "baseline: plain Socket.IO on Node"

const direct = lines.filter((f) => f.scenario === "direct" && !f.error)
if (direct.length) {
  console.log(
    "| 1:1, %d sockets, %d msg/s | received | p50 ms | p99 ms | max ms | ack p99 ms | server CPU µs/msg | server / clients CPU % | load |",
    direct[0].sockets,
    direct[0].rate,
  )
  console.log("|---|--:|--:|--:|--:|--:|--:|--:|--:|")
  for (const f of direct)
    console.log(
      `| ${name(f)} | ${f.received}/${f.messages} | ${f.latencyMs.p50} | ${f.latencyMs.p99} | ${f.latencyMs.max} | ${f.ackMs.p99} | ${f.serverCpuUsPerMessage} | ${f.serverCpuPercent} / ${f.clientCpuPercent ?? "–"} | ${f.loadavg} |`,
    )
  console.log()
}
for (const members of [
  ...new Set(
    lines.filter((f) => f.scenario === "group" && !f.error).map((f) => `${f.members}/${f.presence}`),
  ),
]) {
  const group = lines.filter(
    (f) => f.scenario === "group" && !f.error && `${f.members}/${f.presence}` === members,
  )
  const g = group[0]
  console.log(
    `| group of ${g.members}${g.presence ? " (presence on)" : ""}: ${g.paced.sent} msgs at ${g.rate}/s | connect s (server CPU s) | last recipient p50 ms | p99 ms | per delivery p50 / p99 ms | deliveries/s | CPU µs/delivery | burst of ${g.burst?.messages ?? 0}: last p99 ms | deliveries/s | CPU µs/delivery | load |`,
  )
  console.log("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
  for (const f of group) {
    const p = f.paced
    const b = f.burst
    console.log(
      `| ${name(f)} | ${f.connectSeconds ?? ""} (${f.connectCpuSeconds ?? ""}) | ${p.lastRecipientMs.p50} | ${p.lastRecipientMs.p99} | ${p.perDeliveryMs.p50} / ${p.perDeliveryMs.p99} | ${p.deliveriesPerSecond} | ${p.serverCpuUsPerDelivery} | ${b ? b.lastRecipientMs.p99 : "–"} | ${b ? b.deliveriesPerSecond : "–"} | ${b ? b.serverCpuUsPerDelivery : "–"} | ${f.loadavg} |`,
    )
  }
  console.log()
}
const idle = lines.filter((f) => f.protocol && f.serverRssPerConnectionKiB !== undefined)
if (idle.length) {
  console.log(
    "| idle sockets | connected | connect s | server CPU ms/connect | server RSS before → after MiB | RSS per connection KiB | load |",
  )
  console.log("|---|--:|--:|--:|--:|--:|--:|")
  for (const f of idle)
    console.log(
      `| ${f.server === "urge" ? `URGE ${f.protocol === "native" ? "native /ws" : "Socket.IO"}` : name(f)} | ${f.connected}/${f.connected + f.failed} | ${f.connectSeconds} | ${f.serverCpuMsPerConnect} | ${f.serverRssBeforeMiB} → ${f.serverRssAfterMiB} | ${f.serverRssPerConnectionKiB} | ${f.loadavg} |`,
    )
}
for (const f of lines.filter((f) => f.error))
  console.log(`\n- ${f.scenario} ${f.protocol}:${f.via}: error ${f.error}`)
