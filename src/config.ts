import { existsSync, readFileSync } from "node:fs"
import { resolve } from "node:path"

/**
 * Configuration: defaults < config file < environment < command-line flags.
 * Every key is declared once in `fields` (type, default, doc); config.example.toml is checked against it by a test.
 */

/** A value the user gave that cannot be used; the message names the key and what is allowed. */
export class ConfigError extends Error {}

type Parse<T> = (raw: unknown, key: string) => T

const fail = (key: string, allowed: string, raw: unknown): never => {
  throw new ConfigError(`config: ${key} must be ${allowed} (got ${JSON.stringify(raw)})`)
}

const str: Parse<string> = (raw, key) => (typeof raw === "string" ? raw : fail(key, "a string", raw))

const bool: Parse<boolean> = (raw, key) => {
  if (typeof raw === "boolean") return raw
  if (raw === "true" || raw === "1") return true
  if (raw === "false" || raw === "0") return false
  return fail(key, "true or false", raw)
}

const int =
  (min: number, max: number): Parse<number> =>
  (raw, key) => {
    const n = typeof raw === "string" && raw.trim() !== "" ? Number(raw) : raw
    if (typeof n === "number" && Number.isInteger(n) && n >= min && n <= max) return n
    return fail(key, `an integer from ${min} to ${max}`, raw)
  }

const oneOf =
  <const T extends string>(...allowed: T[]): Parse<T> =>
  (raw, key) =>
    allowed.includes(raw as T) ? (raw as T) : fail(key, `one of ${allowed.join(", ")}`, raw)

const durationUnits: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400 }

/** A duration in seconds: a number of seconds, or a string like "90s", "15m", "7d". */
const duration =
  (minSeconds: number): Parse<number> =>
  (raw, key) => {
    const match = typeof raw === "string" ? /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(raw.trim()) : null
    const seconds =
      typeof raw === "number" ? raw : match ? Number(match[1]) * durationUnits[match[2] ?? "s"]! : NaN
    if (Number.isFinite(seconds) && seconds >= minSeconds) return seconds
    return fail(key, `a duration of at least ${minSeconds}s, like 30, "90s", "15m" or "7d"`, raw)
  }

const list: Parse<string[]> = (raw, key) => {
  if (Array.isArray(raw) && raw.every((v) => typeof v === "string")) return raw
  if (typeof raw === "string")
    return raw
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean)
  return fail(key, "a list of strings", raw)
}

const url =
  (...schemes: string[]): Parse<string> =>
  (raw, key) => {
    if (raw === "") return ""
    const s = str(raw, key)
    if (schemes.some((scheme) => s.startsWith(`${scheme}:`)) && URL.canParse(s)) return s
    return fail(key, `empty or a ${schemes.join(" or ")} URL`, raw)
  }

const sizeUnits: Record<string, number> = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3 }

/** A size in bytes: a number of bytes, or a string like "512KB", "10MB", "1GB" (binary multiples). */
const byteSize: Parse<number> = (raw, key) => {
  const match = typeof raw === "string" ? /^(\d+(?:\.\d+)?)\s*(b|kb|mb|gb)?$/i.exec(raw.trim()) : null
  const bytes =
    typeof raw === "number"
      ? raw
      : match
        ? Number(match[1]) * sizeUnits[(match[2] ?? "b").toLowerCase()]!
        : NaN
  if (Number.isFinite(bytes) && bytes >= 1) return Math.floor(bytes)
  return fail(key, 'a size in bytes, like 1048576 or "10MB"', raw)
}

/** A rate limit: "N/duration" (at most N requests per window, e.g. "5/10m"), or "off". */
export type RateLimit = { limit: number; windowSeconds: number } | null

const rate: Parse<RateLimit> = (raw, key) => {
  if (raw === "off" || raw === "0" || raw === 0 || raw === false) return null
  const match = typeof raw === "string" ? /^(\d+)\s*\/\s*(.+)$/.exec(raw.trim()) : null
  if (match && Number(match[1]) > 0) {
    const windowSeconds = duration(1)(match[2], key)
    return { limit: Number(match[1]), windowSeconds }
  }
  return fail(key, 'a rate like "5/10m" (at most 5 per 10 minutes) or "off"', raw)
}

/** Every configuration key, its parser, its default and one line of documentation. */
const fields = {
  "server.host": { parse: str, default: "0.0.0.0", doc: "Address to listen on." },
  "server.port": {
    parse: int(0, 65535),
    default: 8080,
    doc: "Port for HTTP, /ws and /socket.io/ (0 picks a free one).",
  },
  "server.public_url": {
    parse: url("http", "https"),
    default: "",
    doc: 'Absolute URL clients reach this server at, used in media links (empty: "http://localhost:<port>").',
  },
  "server.mode": {
    parse: oneOf("development", "production"),
    default: "development",
    doc: "production refuses unsafe development drivers (console SMS) unless allowed explicitly.",
  },
  "server.body_limit": {
    parse: int(1024, 1024 * 1024 * 1024),
    default: 1024 * 1024,
    doc: "Largest JSON request body in bytes; a larger one gets 413.",
  },
  "server.shutdown_timeout": {
    parse: duration(0),
    default: 10,
    doc: "On SIGTERM/SIGINT, how long in-flight requests may take before the server stops anyway.",
  },
  "server.cors_origins": {
    parse: list,
    default: ["*"],
    doc: 'Origins allowed by CORS ("*" for any; an empty list turns CORS headers off).',
  },
  "server.trust_proxy": {
    parse: bool,
    default: false,
    doc: "Take the client IP from X-Forwarded-For (only behind a reverse proxy you run).",
  },
  "log.level": {
    parse: oneOf("debug", "info", "warn", "error"),
    default: "info",
    doc: "Lowest level written.",
  },
  "log.requests": {
    parse: bool,
    default: true,
    doc: "One JSON line per HTTP request (method, path, status, duration).",
  },
  "data.dir": {
    parse: str,
    default: "./data",
    doc: "Directory for the SQLite file, uploaded media and the generated JWT secret.",
  },
  "database.url": {
    parse: url("postgres", "postgresql", "sqlite", "file"),
    default: "",
    doc: 'Empty: SQLite at <data.dir>/urge.db. "sqlite:/path/file.db" for another file, "postgres://user@host:5432/db" for Postgres.',
  },
  "database.pool_size": { parse: int(1, 1000), default: 10, doc: "Postgres connections per process." },
  "database.durability": {
    parse: oneOf("full", "normal"),
    default: "full",
    doc: 'SQLite: "full" survives power loss (no write is acknowledged before it is fsynced; concurrent sends share one commit and one fsync, taken off the event loop); "normal" survives a crash of the process.',
  },
  "database.busy_timeout": {
    parse: int(0, 600_000),
    default: 5000,
    doc: "SQLite: milliseconds to wait for a lock held by another process (the CLI while serving).",
  },
  "database.migrate_on_start": {
    parse: bool,
    default: true,
    doc: "urge serve applies pending migrations before listening (urge serve --no-migrate turns it off).",
  },
  "backup.dir": {
    parse: str,
    default: "",
    doc: "Where urge backup create writes and urge backup list looks (empty: <data.dir>/backups; relative: under data.dir).",
  },
  "backup.keep": {
    parse: int(0, 100_000),
    default: 0,
    doc: "After urge backup create, delete all but this many newest backups of backup.dir (0 keeps every one).",
  },
  "auth.jwt_secret": {
    parse: str,
    default: "",
    doc: "HS256 secret for access tokens. Empty: generated on first start and kept in <data.dir>/jwt-secret. Set it when several instances share one database.",
  },
  "auth.access_token_ttl": { parse: duration(1), default: 15 * 60, doc: "Access token lifetime." },
  "auth.refresh_token_ttl": {
    parse: duration(60),
    default: 7 * 86400,
    doc: "Refresh token (session) lifetime, sliding: each refresh extends it.",
  },
  "auth.rotate_refresh_tokens": {
    parse: bool,
    default: false,
    doc: "Return a new refresh token on each refresh and retire the old one (the URGE app keeps its first one: leave off for it).",
  },
  "auth.otp_ttl": { parse: duration(10), default: 5 * 60, doc: "How long a one-time SMS code stays valid." },
  "auth.otp_max_attempts": {
    parse: int(1, 100),
    default: 5,
    doc: "Wrong tries after which a one-time code is dead (a new one must be requested).",
  },
  "auth.otp_resend_cooldown": {
    parse: duration(0),
    default: 30,
    doc: "Least time between two codes sent to one phone number (429 with Retry-After before that).",
  },
  "sms.driver": {
    parse: oneOf("console", "twilio"),
    default: "console",
    doc: 'How one-time codes reach phones: "console" writes them to the server log (development), "twilio" sends SMS.',
  },
  "sms.allow_console_in_production": {
    parse: bool,
    default: false,
    doc: "Let server.mode = production start with the console SMS driver (codes only in the log).",
  },
  "sms.twilio_account_sid": { parse: str, default: "", doc: "Twilio account SID (AC…)." },
  "sms.twilio_auth_token": { parse: str, default: "", doc: "Twilio auth token." },
  "sms.twilio_from": {
    parse: str,
    default: "",
    doc: "Sender phone number in E.164 (or set sms.twilio_messaging_service_sid).",
  },
  "sms.twilio_messaging_service_sid": {
    parse: str,
    default: "",
    doc: "Twilio messaging service SID (MG…); used instead of sms.twilio_from when set.",
  },
  "sms.twilio_api_url": {
    parse: url("http", "https"),
    default: "",
    doc: "Base URL of the Twilio API (empty: https://api.twilio.com); for a proxy or a test double.",
  },
  "rate_limit.enabled": {
    parse: bool,
    default: true,
    doc: "Per-IP and per-phone limits on the auth routes (429 with Retry-After). Counted per process.",
  },
  "rate_limit.send_code_per_ip": {
    parse: rate,
    default: "20/1h",
    doc: "send-verification/send-code per client IP.",
  },
  "rate_limit.send_code_per_phone": {
    parse: rate,
    default: "5/1h",
    doc: "send-verification/send-code per phone number (on top of auth.otp_resend_cooldown).",
  },
  "rate_limit.register_per_ip": { parse: rate, default: "10/1h", doc: "register per client IP." },
  "rate_limit.login_per_ip": { parse: rate, default: "30/10m", doc: "login per client IP." },
  "rate_limit.login_per_phone": { parse: rate, default: "10/10m", doc: "login per phone number." },
  "rate_limit.verify_per_ip": {
    parse: rate,
    default: "30/10m",
    doc: "verify-phone and verify-reset-code per client IP.",
  },
  "rate_limit.verify_per_phone": {
    parse: rate,
    default: "10/10m",
    doc: "verify-phone and verify-reset-code per phone number.",
  },
  "rate_limit.reset_per_ip": {
    parse: rate,
    default: "10/1h",
    doc: "forgot-password and reset-password per client IP.",
  },
  "rate_limit.reset_per_phone": {
    parse: rate,
    default: "5/1h",
    doc: "forgot-password and reset-password per phone number.",
  },
  "realtime.bus": {
    parse: oneOf("local", "redis", "postgres"),
    default: "local",
    doc: 'How realtime events reach the sockets of other instances: "local" (one process), "redis" or "postgres" (LISTEN/NOTIFY on database.url) when several instances share one database.',
  },
  "realtime.redis_url": {
    parse: url("redis", "rediss"),
    default: "redis://127.0.0.1:6379",
    doc: 'Redis for realtime.bus = "redis".',
  },
  "realtime.bus_channel": {
    parse: (raw, key) =>
      typeof raw === "string" && /^[a-z_][a-z0-9_]{0,62}$/.test(raw)
        ? raw
        : fail(key, "a lowercase identifier (letters, digits, _)", raw),
    default: "urge_realtime",
    doc: "Pub/sub channel of the realtime bus (instances of one deployment share it).",
  },
  "realtime.ping_interval": {
    parse: duration(1),
    default: 25,
    doc: "Socket.IO heartbeat interval; native /ws sockets are pinged after twice this much silence.",
  },
  "realtime.presence_grace": {
    parse: duration(0),
    default: 5,
    doc: "How long after a user's last socket closes before they are shown offline (a quick reconnect stays online).",
  },
  "realtime.heartbeat_interval": {
    parse: duration(0.01),
    default: 5,
    doc: "With a redis or postgres bus, how often each instance announces on the bus that it is alive.",
  },
  "realtime.heartbeat_timeout": {
    parse: duration(0.05),
    default: 20,
    doc: "An instance silent on the bus this long (at least twice heartbeat_interval) is taken for dead (killed, crashed, cut off): the users online only through it are shown offline.",
  },
  "realtime.presence_group_limit": {
    parse: int(0, 1_000_000),
    default: 256,
    doc: "Presence (user:online/offline) is shown through direct chats and groups of at most this many members.",
  },
  "realtime.typing_timeout": {
    parse: duration(0.01),
    default: 6,
    doc: "A typing indicator stops by itself this long after the last typing:start.",
  },
  "realtime.send_buffer_limit": {
    parse: int(16 * 1024, 1024 * 1024 * 1024),
    default: 1024 * 1024,
    doc: "Bytes queued to one socket before typing/presence are dropped (at half) and the socket counts as a slow consumer.",
  },
  "realtime.slow_consumer_timeout": {
    parse: duration(0),
    default: 10,
    doc: "A socket over its send buffer limit this long (or at twice the limit) is closed with 4429.",
  },
  "media.driver": {
    parse: oneOf("local", "s3"),
    default: "local",
    doc: 'Where uploaded files are kept: "local" (files under media.dir) or "s3" (any S3-compatible bucket).',
  },
  "media.dir": {
    parse: str,
    default: "",
    doc: "Directory of the local media driver (empty: <data.dir>/media).",
  },
  "media.upload_url_ttl": {
    parse: duration(10),
    default: 3600,
    doc: "How long an upload URL from POST /media/presigned-url stays valid.",
  },
  "media.image_limit": { parse: byteSize, default: "10MB", doc: "Largest image upload." },
  "media.video_limit": { parse: byteSize, default: "100MB", doc: "Largest video upload." },
  "media.audio_limit": { parse: byteSize, default: "20MB", doc: "Largest audio (voice note) upload." },
  "media.document_limit": { parse: byteSize, default: "20MB", doc: "Largest document upload." },
  "media.s3_bucket": { parse: str, default: "", doc: "Bucket of the s3 media driver." },
  "media.s3_region": { parse: str, default: "us-east-1", doc: "Region of the bucket (SigV4 signing)." },
  "media.s3_endpoint": {
    parse: url("http", "https"),
    default: "",
    doc: "S3-compatible endpoint (MinIO, R2, Spaces…); empty: AWS S3 of media.s3_region. Path-style requests.",
  },
  "media.s3_access_key_id": { parse: str, default: "", doc: "Access key id for the bucket." },
  "media.s3_secret_access_key": { parse: str, default: "", doc: "Secret access key for the bucket." },
  "push.driver": {
    parse: oneOf("log", "fcm"),
    default: "log",
    doc: 'How pushes reach devices: "log" writes each push it would send to the server log (without title and body in production mode), "fcm" sends through Firebase Cloud Messaging (HTTP v1). iOS tokens too, unless push.ios_driver says otherwise.',
  },
  "push.ios_driver": {
    parse: oneOf("", "log", "fcm", "apns"),
    default: "",
    doc: 'Driver for iOS tokens (empty: push.driver). "apns" sends to Apple directly (token-based auth) when the app registers APNs tokens instead of FCM ones.',
  },
  "push.concurrency": {
    parse: int(1, 1000),
    default: 8,
    doc: "Pushes sent at the same time (the rest wait in the queue, off the request path).",
  },
  "push.queue_limit": {
    parse: int(1, 10_000_000),
    default: 10_000,
    doc: "Pushes waiting at most; beyond it new ones are dropped (and logged) rather than using unbounded memory.",
  },
  "push.fcm_service_account": {
    parse: str,
    default: "",
    doc: "Path to the Firebase service account JSON (project_id, client_email, private_key, token_uri).",
  },
  "push.fcm_api_url": {
    parse: url("http", "https"),
    default: "",
    doc: "Base URL of the FCM API (empty: https://fcm.googleapis.com); for a proxy or a test double.",
  },
  "push.apns_key_path": { parse: str, default: "", doc: "Path to the APNs auth key (.p8, ES256)." },
  "push.apns_key_id": { parse: str, default: "", doc: "Key ID of the APNs auth key." },
  "push.apns_team_id": { parse: str, default: "", doc: "Apple developer team ID." },
  "push.apns_topic": { parse: str, default: "", doc: "The app's bundle ID (apns-topic header)." },
  "push.apns_production": {
    parse: bool,
    default: false,
    doc: "Send to api.push.apple.com (production) instead of api.sandbox.push.apple.com (development builds).",
  },
  "push.apns_url": {
    parse: url("http", "https"),
    default: "",
    doc: "Base URL of APNs (empty: chosen by push.apns_production); for a test double.",
  },
} as const satisfies Record<string, { parse: Parse<unknown>; default: unknown; doc: string }>

export type ConfigKey = keyof typeof fields
type Flat = { [K in ConfigKey]: ReturnType<(typeof fields)[K]["parse"]> }

/** The validated configuration, grouped by section, plus where it came from. */
export type Config = {
  server: {
    host: string
    port: number
    public_url: string
    mode: "development" | "production"
    body_limit: number
    shutdown_timeout: number
    cors_origins: string[]
    trust_proxy: boolean
  }
  log: { level: "debug" | "info" | "warn" | "error"; requests: boolean }
  data: { dir: string }
  database: {
    url: string
    pool_size: number
    durability: "full" | "normal"
    busy_timeout: number
    migrate_on_start: boolean
  }
  backup: { dir: string; keep: number }
  auth: {
    jwt_secret: string
    access_token_ttl: number
    refresh_token_ttl: number
    rotate_refresh_tokens: boolean
    otp_ttl: number
    otp_max_attempts: number
    otp_resend_cooldown: number
  }
  sms: {
    driver: "console" | "twilio"
    allow_console_in_production: boolean
    twilio_account_sid: string
    twilio_auth_token: string
    twilio_from: string
    twilio_messaging_service_sid: string
    twilio_api_url: string
  }
  rate_limit: {
    enabled: boolean
    send_code_per_ip: RateLimit
    send_code_per_phone: RateLimit
    register_per_ip: RateLimit
    login_per_ip: RateLimit
    login_per_phone: RateLimit
    verify_per_ip: RateLimit
    verify_per_phone: RateLimit
    reset_per_ip: RateLimit
    reset_per_phone: RateLimit
  }
  realtime: {
    bus: "local" | "redis" | "postgres"
    redis_url: string
    bus_channel: string
    ping_interval: number
    presence_grace: number
    heartbeat_interval: number
    heartbeat_timeout: number
    presence_group_limit: number
    typing_timeout: number
    send_buffer_limit: number
    slow_consumer_timeout: number
  }
  media: {
    driver: "local" | "s3"
    dir: string
    upload_url_ttl: number
    image_limit: number
    video_limit: number
    audio_limit: number
    document_limit: number
    s3_bucket: string
    s3_region: string
    s3_endpoint: string
    s3_access_key_id: string
    s3_secret_access_key: string
  }
  push: {
    driver: "log" | "fcm"
    ios_driver: "" | "log" | "fcm" | "apns"
    concurrency: number
    queue_limit: number
    fcm_service_account: string
    fcm_api_url: string
    apns_key_path: string
    apns_key_id: string
    apns_team_id: string
    apns_topic: string
    apns_production: boolean
    apns_url: string
  }
  /** The config file that was read, if any. */
  source: string | null
}

/** Keys, defaults and docs, for `urge config` and the test that keeps config.example.toml complete. */
export const configFields: ReadonlyArray<{ key: ConfigKey; default: unknown; doc: string }> = Object.entries(
  fields,
).map(([key, f]) => ({ key: key as ConfigKey, default: f.default, doc: f.doc }))

/** Environment variable of a key: `server.port` → `URGE_SERVER_PORT`. */
export const envName = (key: string) => `URGE_${key.replace(".", "_").toUpperCase()}`

/** Common variables honoured besides the URGE_* ones. */
const envAliases: Partial<Record<ConfigKey, string>> = {
  "database.url": "DATABASE_URL",
  "server.port": "PORT",
}

export type LoadOptions = {
  /** Path given with --config; when absent, ./config.toml is read if it exists. */
  configPath?: string
  env?: Record<string, string | undefined>
  /** Command-line flags and test overrides, by dotted key. */
  overrides?: Partial<Record<ConfigKey, unknown>>
  cwd?: string
}

/** Reads and validates the configuration; throws ConfigError naming the key on a bad value. */
export function loadConfig(options: LoadOptions = {}): Config {
  const env = options.env ?? process.env
  const cwd = options.cwd ?? process.cwd()
  const explicit = options.configPath ?? env.URGE_CONFIG
  const path = explicit ? resolve(cwd, explicit) : resolve(cwd, "config.toml")
  let fileValues: Record<string, unknown> = {}
  let source: string | null = null
  if (explicit && !existsSync(path)) throw new ConfigError(`config: file not found: ${path}`)
  if (existsSync(path)) {
    try {
      fileValues = flatten(Bun.TOML.parse(readFileSync(path, "utf8")) as Record<string, unknown>)
    } catch (error) {
      throw new ConfigError(`config: ${path} is not valid TOML: ${(error as Error).message}`)
    }
    source = path
    for (const key of Object.keys(fileValues))
      if (!(key in fields)) throw new ConfigError(`config: unknown key ${key} in ${path}`)
  }

  const flat = {} as Record<ConfigKey, unknown>
  for (const [key, field] of Object.entries(fields) as [ConfigKey, (typeof fields)[ConfigKey]][]) {
    let raw: unknown = field.default
    if (key in fileValues) raw = fileValues[key]
    const alias = envAliases[key]
    if (alias && env[alias] !== undefined && env[alias] !== "") raw = env[alias]
    if (env[envName(key)] !== undefined) raw = env[envName(key)]
    if (options.overrides && options.overrides[key] !== undefined) raw = options.overrides[key]
    flat[key] = (field.parse as Parse<unknown>)(raw, key)
  }
  const config = unflatten(flat as Flat) as unknown as Config
  config.data.dir = resolve(cwd, config.data.dir)
  if (config.media.dir) config.media.dir = resolve(cwd, config.media.dir)
  // A timeout within one interval would take live instances for dead between two heartbeats.
  if (config.realtime.heartbeat_timeout < 2 * config.realtime.heartbeat_interval)
    fail(
      "realtime.heartbeat_timeout",
      `at least twice realtime.heartbeat_interval (${config.realtime.heartbeat_interval}s)`,
      config.realtime.heartbeat_timeout,
    )
  config.source = source
  return config
}

function flatten(tree: Record<string, unknown>, prefix = ""): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(tree)) {
    const key = prefix ? `${prefix}.${k}` : k
    if (v && typeof v === "object" && !Array.isArray(v))
      Object.assign(out, flatten(v as Record<string, unknown>, key))
    else out[key] = v
  }
  return out
}

function unflatten(flat: Record<string, unknown>): Record<string, Record<string, unknown>> {
  const out: Record<string, Record<string, unknown>> = {}
  for (const [key, value] of Object.entries(flat)) {
    const [section, name] = key.split(".") as [string, string]
    ;(out[section] ??= {})[name] = value
  }
  return out
}

/** The URL clients use to reach this server (media links), without a trailing slash. */
export const publicUrl = (config: Config, port: number) =>
  (config.server.public_url || `http://localhost:${port}`).replace(/\/+$/, "")

/** config.example.toml, generated from the declared keys (`urge config example`; a test keeps the file equal to it). */
export function renderExampleConfig(): string {
  const toml = (v: unknown) => (typeof v === "string" || Array.isArray(v) ? JSON.stringify(v) : String(v))
  let out = `# URGE server configuration. Every key is shown with its default.
# Precedence: defaults < this file (--config PATH, else ./config.toml) < environment < command-line flags.
# Each key also reads from the environment as URGE_<SECTION>_<KEY> (e.g. URGE_SERVER_PORT);
# DATABASE_URL and PORT are honoured too. Durations take seconds or "90s", "15m", "12h", "7d".
`
  let section = ""
  for (const f of configFields) {
    const [s, name] = f.key.split(".") as [string, string]
    if (s !== section) out += `\n[${(section = s)}]\n`
    out += `# ${f.doc} (${envName(f.key)})\n${name} = ${toml(f.default)}\n`
  }
  return out
}
