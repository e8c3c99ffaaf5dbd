import twilio from "twilio"
import RequestClient from "twilio/lib/base/RequestClient"
import type { Config } from "../config.ts"

/**
 * Twilio's HTTP client, pointed at another base URL (a proxy or a test double): the library builds and
 * encodes the request exactly as for api.twilio.com, only the origin changes.
 */
class RebasedRequestClient extends RequestClient {
  constructor(private readonly base: URL) {
    super({ timeout: 10_000 })
  }
  override request<T>(opts: RequestClient.RequestOptions<T>) {
    const uri = new URL(opts.uri)
    return super.request({ ...opts, uri: new URL(uri.pathname + uri.search, this.base).toString() })
  }
}

/** A function sending one SMS through Twilio's Messages API with the configured account and sender. */
export function twilioSender(config: Config) {
  const { twilio_account_sid: sid, twilio_auth_token: token, twilio_from: from } = config.sms
  const service = config.sms.twilio_messaging_service_sid
  const client = twilio(sid, token, {
    httpClient: config.sms.twilio_api_url
      ? new RebasedRequestClient(new URL(config.sms.twilio_api_url))
      : undefined,
    timeout: 10_000,
  })
  return (to: string, body: string) =>
    client.messages.create(service ? { to, body, messagingServiceSid: service } : { to, body, from })
}
