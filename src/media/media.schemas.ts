import { t } from "elysia"

const folder = t.Union(
  [t.Literal("avatars"), t.Literal("media"), t.Literal("documents"), t.Literal("voice")],
  {
    description: "avatars: images; media: images and videos; documents: PDF, Word; voice: audio",
  },
)

/** Body of `POST /media/presigned-url` (CONTRACT §2.6). */
export const presignBody = t.Object({
  file_name: t.String({ minLength: 1, maxLength: 255 }),
  file_type: t.String({
    maxLength: 255,
    description: "the MIME type the app declares (checked against the folder; the stored type is sniffed)",
  }),
  folder: t.Optional(folder),
})

export const presignResponse = t.Object({
  upload_url: t.String({ description: "PUT the raw file here (no Authorization header needed)" }),
  file_key: t.String(),
  file_url: t.String({ description: "absolute; served once complete-upload accepted the file" }),
  expires_in: t.Integer({ description: "seconds the upload URL stays valid" }),
})

const optionalInt = t.Optional(t.Nullable(t.Number({ minimum: 0 })))

/** Body of `POST /media/complete-upload`; only `file_key` matters, the rest is taken from the bytes when it can be. */
export const completeBody = t.Object({
  file_key: t.String({ maxLength: 500 }),
  file_url: t.Optional(t.String({ maxLength: 4000 })),
  file_type: t.Optional(
    t.String({ description: "IMAGE, VIDEO, AUDIO or DOCUMENT (ignored: the kind is sniffed)" }),
  ),
  file_size: t.Optional(t.Number({ minimum: 0, description: "ignored: the stored size counts" })),
  file_name: t.Optional(t.String({ maxLength: 255 })),
  mime_type: t.Optional(t.String({ maxLength: 255, description: "ignored: the type is sniffed" })),
  duration: optionalInt,
  width: optionalInt,
  height: optionalInt,
})

/** Multipart body of `POST /media/upload`. */
export const uploadBody = t.Object({
  file: t.File({ description: "the file; its type is sniffed from the bytes" }),
})

export const mediaResponse = t.Object({
  id: t.String(),
  file_url: t.String(),
  thumbnail_url: t.Nullable(t.String()),
  file_type: t.Union([t.Literal("IMAGE"), t.Literal("VIDEO"), t.Literal("AUDIO"), t.Literal("DOCUMENT")]),
  file_size: t.Integer(),
  file_name: t.String(),
  mime_type: t.String({ description: "sniffed from the bytes" }),
  duration: t.Nullable(t.Integer()),
  width: t.Nullable(t.Integer()),
  height: t.Nullable(t.Integer()),
  created_at: t.String(),
})

export const idParams = t.Object({ id: t.String() })

/** A media key as path segments: `<folder>/<user>/<YYYY>/<MM>/<name>`. */
export const keyParams = t.Object({
  folder: t.String(),
  user: t.String(),
  year: t.String(),
  month: t.String(),
  name: t.String(),
})

export const blobQuery = t.Object({
  expires: t.Optional(t.String()),
  sig: t.Optional(t.String()),
})

export const fileQuery = t.Object({
  download: t.Optional(t.String({ description: "1: sent as an attachment" })),
})

export const deleteResponse = t.Object({ success: t.Boolean(), message: t.String() })
export const downloadResponse = t.Object({ download_url: t.String(), expires_in: t.Integer() })
export const blobResponse = t.Object({ success: t.Boolean(), file_key: t.String(), file_size: t.Integer() })
