import { existsSync, linkSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { type Clock, systemClock } from "./clock.ts"
import { type Config, ConfigError } from "./config.ts"
import { type DatabaseHandle, openDatabase } from "./db/database.ts"
import { createDomainEvents, type DomainEvents } from "./events.ts"
import { createLogger, type Logger } from "./logger.ts"
import { createRateLimiter, type RateLimiter } from "./auth/rate-limit.ts"
import { createSmsDriver, type SmsDriver } from "./sms/sms.driver.ts"
import {
  createLocalBus,
  createPostgresBus,
  createRedisBus,
  type RealtimeBus,
} from "./realtime/realtime.bus.ts"
import { createPresence, type Presence } from "./realtime/realtime.hub.ts"
import { createMediaStorage, type MediaStorage } from "./media/storage.ts"
import { createPushDrivers } from "./push/push.driver.ts"
import { createPushService, type PushService } from "./push/push.service.ts"
import { createSearchIndexer, type SearchIndexer } from "./messages/search.indexer.ts"

/** Everything the server and the CLI run on, built once from the config (the composition root). */
export type Deps = {
  config: Config
  logger: Logger
  clock: Clock
  database: DatabaseHandle
  /** Announcements after commit (realtime and push listen). */
  events: DomainEvents
  /** Carries realtime events between instances (local, redis or postgres). */
  bus: RealtimeBus
  /** Who has a live socket on any instance (kept by the realtime hub; REST reads is_online from it). */
  presence: Presence
  /** HS256 key for access tokens. */
  jwtSecret: string
  /** Sends one-time codes (console or twilio). */
  sms: SmsDriver
  /** Per-IP and per-phone counters of the auth routes. */
  rateLimits: RateLimiter
  /** Where uploaded media bytes live (local or s3). */
  media: MediaStorage
  /** Pushes to members without a live socket (started by urge serve). */
  push: PushService
  /** SQLite: indexes sent messages for search, after the send (started by urge serve; a search catches up). */
  searchIndex: SearchIndexer
  close(): Promise<void>
}

export type DepsOverrides = { logger?: Logger; clock?: Clock }

/** Builds the deps from a validated config. Nothing else reads the config to choose a driver. */
export function createDeps(config: Config, overrides: DepsOverrides = {}): Deps {
  const logger = overrides.logger ?? createLogger(config.log.level)
  mkdirSync(config.data.dir, { recursive: true })
  const sms = createSmsDriver(config, logger)
  const pushDrivers = createPushDrivers(config, logger)
  const database = openDatabase(config)
  const clock = overrides.clock ?? systemClock
  const events = createDomainEvents(logger)
  const deps: Deps = {
    config,
    logger,
    clock,
    database,
    events,
    bus: createBus(config, logger),
    presence: createPresence(),
    jwtSecret: resolveJwtSecret(config, logger),
    sms,
    rateLimits: createRateLimiter(clock, config.rate_limit.enabled),
    media: createMediaStorage(config),
    push: undefined as unknown as PushService,
    searchIndex: createSearchIndexer(database, events, logger, config.database.busy_timeout),
    close: async () => {
      await deps.searchIndex.stop()
      await database.close()
    },
  }
  deps.push = createPushService(deps, pushDrivers)
  return deps
}

/** The realtime bus the config asks for. */
function createBus(config: Config, logger: Logger): RealtimeBus {
  const { bus, redis_url, bus_channel } = config.realtime
  if (bus === "redis") return createRedisBus(redis_url, bus_channel, logger)
  if (bus === "postgres") {
    if (!/^postgres(ql)?:/.test(config.database.url))
      throw new ConfigError('config: realtime.bus = "postgres" needs a Postgres database.url')
    return createPostgresBus(config.database.url, bus_channel, logger)
  }
  return createLocalBus()
}

/** The configured secret, else the one generated on first start and kept (mode 0600) in the data directory. */
function resolveJwtSecret(config: Config, logger: Logger): string {
  if (config.auth.jwt_secret) return config.auth.jwt_secret
  const file = join(config.data.dir, "jwt-secret")
  if (!existsSync(file)) {
    // Written whole under a private name, then linked into place: of two processes starting together on a
    // new data directory, one wins and the other reads the winner's complete file.
    const secret = Buffer.from(crypto.getRandomValues(new Uint8Array(48))).toString("base64url")
    const draft = `${file}.${process.pid}.${Date.now()}`
    writeFileSync(draft, secret + "\n", { mode: 0o600 })
    try {
      linkSync(draft, file)
      logger.info("generated a JWT secret", { file })
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error
    } finally {
      unlinkSync(draft)
    }
  }
  return readFileSync(file, "utf8").trim()
}
