import { describe, expect, test } from "bun:test"
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { ConfigError, configFields, loadConfig, renderExampleConfig } from "../src/config.ts"
import { runCli } from "./helpers/cli.ts"

const dir = () => mkdtempSync(join(tmpdir(), "urge-config-"))

describe("configuration", () => {
  test("config.example.toml documents every key with its default", () => {
    const file = readFileSync(join(import.meta.dir, "..", "config.example.toml"), "utf8")
    expect(file.trimEnd()).toBe(renderExampleConfig().trimEnd())
    // Reading the example gives exactly the defaults.
    const cwd = dir()
    writeFileSync(join(cwd, "config.toml"), file)
    const fromExample = loadConfig({ cwd, env: {} })
    const defaults = loadConfig({ cwd: dir(), env: {} })
    const comparable = (c: typeof defaults) => ({ ...c, source: null, data: { dir: "" } })
    expect(comparable(fromExample)).toEqual(comparable(defaults))
    expect(configFields.length).toBeGreaterThan(10)
  })

  test("precedence: defaults < file < environment < flags", () => {
    const cwd = dir()
    writeFileSync(
      join(cwd, "config.toml"),
      '[server]\nport = 9001\nhost = "127.0.0.2"\n[log]\nlevel = "warn"\n',
    )
    const fromFile = loadConfig({ cwd, env: {} })
    expect(fromFile.server.port).toBe(9001)
    expect(fromFile.log.level).toBe("warn")
    expect(fromFile.server.mode).toBe("development")
    const fromEnv = loadConfig({ cwd, env: { PORT: "9002", URGE_LOG_LEVEL: "error" } })
    expect(fromEnv.server.port).toBe(9002)
    expect(fromEnv.server.host).toBe("127.0.0.2")
    expect(loadConfig({ cwd, env: { PORT: "9002", URGE_SERVER_PORT: "9003" } }).server.port).toBe(9003)
    const fromFlags = loadConfig({ cwd, env: { PORT: "9002" }, overrides: { "server.port": "9004" } })
    expect(fromFlags.server.port).toBe(9004)
    expect(loadConfig({ cwd, env: { DATABASE_URL: "postgres://u@h/db" } }).database.url).toBe(
      "postgres://u@h/db",
    )
  })

  test("--config reads the named file; a missing one is an error", () => {
    const cwd = dir()
    writeFileSync(join(cwd, "other.toml"), '[auth]\naccess_token_ttl = "30s"\n')
    expect(loadConfig({ cwd, env: {}, configPath: "other.toml" }).auth.access_token_ttl).toBe(30)
    expect(() => loadConfig({ cwd, env: {}, configPath: "missing.toml" })).toThrow(ConfigError)
  })

  test("a bad value names the key and what is allowed", () => {
    const cases: [Record<string, string>, RegExp][] = [
      [{ URGE_SERVER_PORT: "99999" }, /server\.port must be an integer from 0 to 65535/],
      [{ URGE_SERVER_MODE: "prod" }, /server\.mode must be one of development, production/],
      [{ URGE_DATABASE_URL: "mysql://x" }, /database\.url must be empty or a postgres/],
      [{ URGE_AUTH_ACCESS_TOKEN_TTL: "soon" }, /auth\.access_token_ttl must be a duration/],
      [{ URGE_LOG_REQUESTS: "maybe" }, /log\.requests must be true or false/],
      // A timeout within two heartbeats would take live instances for dead.
      [
        { URGE_REALTIME_HEARTBEAT_INTERVAL: "10s", URGE_REALTIME_HEARTBEAT_TIMEOUT: "15s" },
        /realtime\.heartbeat_timeout must be at least twice realtime\.heartbeat_interval/,
      ],
    ]
    for (const [env, message] of cases) expect(() => loadConfig({ cwd: dir(), env })).toThrow(message)
    const cwd = dir()
    writeFileSync(join(cwd, "config.toml"), "[server]\nprot = 1\n")
    expect(() => loadConfig({ cwd, env: {} })).toThrow(/unknown key server\.prot/)
    writeFileSync(join(cwd, "config.toml"), "[server\n")
    expect(() => loadConfig({ cwd, env: {} })).toThrow(/not valid TOML/)
  })

  test("durations accept units", () => {
    const env = {
      URGE_AUTH_ACCESS_TOKEN_TTL: "15m",
      URGE_AUTH_REFRESH_TOKEN_TTL: "7d",
      URGE_SERVER_SHUTDOWN_TIMEOUT: "2.5",
    }
    const config = loadConfig({ cwd: dir(), env })
    expect(config.auth.access_token_ttl).toBe(900)
    expect(config.auth.refresh_token_ttl).toBe(604800)
    expect(config.server.shutdown_timeout).toBe(2.5)
  })

  test("urge config check names the file, and reports a bad value", async () => {
    const cwd = dir()
    expect(await runCli(["config", "check"], {}, cwd)).toContain("no config file")
    writeFileSync(join(cwd, "config.toml"), "[server]\nport = 1234\n")
    expect(await runCli(["config", "check"], {}, cwd)).toContain(join(cwd, "config.toml"))
    expect(runCli(["config", "check"], { URGE_SERVER_PORT: "x" }, cwd)).rejects.toThrow(/server\.port/)
  })
})
