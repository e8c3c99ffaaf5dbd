import { t } from "elysia"
import { phoneNumberSchema } from "./phone.ts"

/** A 4–10 character one-time code (ours are 6 digits; anything else simply does not match). */
const codeSchema = t.String({ minLength: 1, maxLength: 10, error: "Invalid verification code" })
const passwordSchema = t.String({
  minLength: 8,
  maxLength: 128,
  error: "Password must be 8 to 128 characters long",
})
const optionalDevice = {
  device_name: t.Optional(t.String({ maxLength: 200 })),
  platform: t.Optional(t.String({ maxLength: 50 })),
}

/** Body of send-verification, send-code and forgot-password. */
export const phoneBody = t.Object({ phone_number: phoneNumberSchema })

/** Body of register. */
export const registerBody = t.Object({
  phone_number: phoneNumberSchema,
  password: t.Optional(passwordSchema),
  display_name: t.Optional(
    t.String({ maxLength: 100, error: "Display name must be at most 100 characters" }),
  ),
  email: t.Optional(
    t.Union([t.Null(), t.String({ format: "email", maxLength: 254, error: "Invalid email address" })]),
  ),
  verification_code: t.Optional(codeSchema),
  ...optionalDevice,
})

/** Body of verify-phone and verify-reset-code. */
export const codeBody = t.Object({ phone_number: phoneNumberSchema, code: codeSchema })

/** Body of login: a code or a password. */
export const loginBody = t.Object({
  phone_number: phoneNumberSchema,
  verification_code: t.Optional(codeSchema),
  password: t.Optional(t.String({ minLength: 1, maxLength: 128 })),
  ...optionalDevice,
})

/** Body of refresh. */
export const refreshBody = t.Object({ refresh_token: t.String({ minLength: 1, maxLength: 512 }) })

/** Body of reset-password. */
export const resetBody = t.Object({
  phone_number: phoneNumberSchema,
  code: codeSchema,
  new_password: passwordSchema,
})

/** `{success, message}`. */
export const successResponse = t.Object({ success: t.Boolean(), message: t.String() })
