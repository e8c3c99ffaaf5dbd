/** Structured JSON logging: one line per event on stdout, fields never include secrets (callers pass none). */

export type LogLevel = "debug" | "info" | "warn" | "error"
const rank: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 }

export type Logger = {
  debug(msg: string, fields?: Record<string, unknown>): void
  info(msg: string, fields?: Record<string, unknown>): void
  warn(msg: string, fields?: Record<string, unknown>): void
  error(msg: string, fields?: Record<string, unknown>): void
  /** Lines written so far, when created with `capture` (tests read the SMS code from here like an operator would). */
  readonly lines?: string[]
}

/** A logger writing JSON lines to a sink (stdout by default). */
export function createLogger(
  level: LogLevel = "info",
  options: { sink?: (line: string) => void; capture?: boolean } = {},
): Logger {
  const lines: string[] | undefined = options.capture ? [] : undefined
  const sink = options.sink ?? ((line: string) => process.stdout.write(line + "\n"))
  const min = rank[level]
  const write = (lvl: LogLevel, msg: string, fields?: Record<string, unknown>) => {
    if (rank[lvl] < min) return
    const line = JSON.stringify({ time: new Date().toISOString(), level: lvl, msg, ...fields })
    lines?.push(line)
    sink(line)
  }
  return {
    debug: (m, f) => write("debug", m, f),
    info: (m, f) => write("info", m, f),
    warn: (m, f) => write("warn", m, f),
    error: (m, f) => write("error", m, f),
    lines,
  }
}
