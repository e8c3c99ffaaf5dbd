import { t } from "elysia"

/** What the app may send as a phone number: digits with an optional leading +, spaces, dashes, dots, parentheses. */
const phonePattern = "^\\s*\\+?[\\s().-]*[1-9](?:[\\s().-]*[0-9]){6,14}[\\s().-]*$"

/** The message the app shows for a bad phone number (the original backend's wording). */
export const invalidPhoneMessage = "Invalid phone number format. Use international format like +1234567890"

/** `t` schema of a phone number field; the value is normalised with `normalizePhone` afterwards. */
export const phoneNumberSchema = t.String({
  pattern: phonePattern,
  maxLength: 32,
  error: invalidPhoneMessage,
  examples: ["+12345678901"],
})

/** E.164 form of a phone number that passed `phoneNumberSchema`: "+1 (234) 567-8901" → "+12345678901" (CONTRACT A2). */
export const normalizePhone = (raw: string) => "+" + raw.replace(/\D/g, "")

/** Whether a string is a phone number the schema would accept (for places without a schema, like the CLI). */
export const isPhoneNumber = (raw: string) => new RegExp(phonePattern).test(raw)
