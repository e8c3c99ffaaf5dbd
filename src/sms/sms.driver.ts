import { type Config, ConfigError } from "../config.ts"
import { AppError } from "../errors.ts"
import type { Logger } from "../logger.ts"

/** How text messages reach phones (one-time codes). Only deps.ts chooses the driver. */
export type SmsDriver = {
  readonly name: "console" | "twilio"
  /** Sends `text` to an E.164 number; throws AppError 503 `sms.unavailable` when the provider refuses. */
  send(to: string, text: string): Promise<void>
}

/** Builds the configured SMS driver. */
export function createSmsDriver(config: Config, logger: Logger): SmsDriver {
  if (config.sms.driver === "twilio") return twilioSmsDriver(config, logger)
  return consoleSmsDriver(logger)
}

/**
 * Development driver: the message (with its code) goes to the server log, where an operator or a test reads
 * it. This is the one log line allowed to carry a code; production refuses this driver unless told.
 */
export function consoleSmsDriver(logger: Logger): SmsDriver {
  return {
    name: "console",
    async send(to, text) {
      logger.info("sms (console driver)", { to, text })
    },
  }
}

/** Refuses to serve in production mode with the console SMS driver unless explicitly allowed (CONTRACT A2). */
export function assertSmsSafeForMode(config: Config): void {
  if (
    config.server.mode === "production" &&
    config.sms.driver === "console" &&
    !config.sms.allow_console_in_production
  )
    throw new ConfigError(
      'config: sms.driver is console in production mode: one-time codes would only reach the server log. Set sms.driver = "twilio", or sms.allow_console_in_production = true to accept it.',
    )
}

/**
 * Twilio Programmable Messaging through the official `twilio` package. The package is loaded on the first
 * message (it takes about a second to import), so the CLI and console-driver servers never pay for it.
 */
export function twilioSmsDriver(config: Config, logger: Logger): SmsDriver {
  const { twilio_account_sid: sid, twilio_auth_token: token, twilio_from: from } = config.sms
  const service = config.sms.twilio_messaging_service_sid
  if (!sid || !token)
    throw new ConfigError(
      "config: sms.driver = twilio needs sms.twilio_account_sid and sms.twilio_auth_token",
    )
  if (!from && !service)
    throw new ConfigError(
      "config: sms.driver = twilio needs sms.twilio_from or sms.twilio_messaging_service_sid",
    )
  let send: Promise<(to: string, body: string) => Promise<unknown>> | undefined
  return {
    name: "twilio",
    async send(to, body) {
      try {
        send ??= import("./sms.twilio.ts").then((m) => m.twilioSender(config))
        await (
          await send
        )(to, body)
      } catch (error) {
        // The provider's message never carries the code; the phone number stays out of the log too.
        logger.error("sms: twilio refused the message", {
          status: (error as { status?: number }).status,
          error: (error as Error).message,
        })
        throw new AppError(
          503,
          "sms.unavailable",
          "The text message could not be sent. Please try again later.",
        )
      }
    },
  }
}
