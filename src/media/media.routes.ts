import { Elysia } from "elysia"
import { authPlugin } from "../auth/auth.plugin.ts"
import type { Deps } from "../deps.ts"
import {
  blobQuery,
  blobResponse,
  completeBody,
  deleteResponse,
  downloadResponse,
  fileQuery,
  idParams,
  keyParams,
  mediaResponse,
  presignBody,
  presignResponse,
  uploadBody,
} from "./media.schemas.ts"
import {
  baseUrl,
  completeUpload,
  deleteMedia,
  downloadLink,
  getMedia,
  presignUpload,
  receiveUpload,
  serveFile,
  uploadFile,
} from "./media.service.ts"

type KeyParams = { folder: string; user: string; year: string; month: string; name: string }
const keyOf = (p: KeyParams) => `${p.folder}/${p.user}/${p.year}/${p.month}/${p.name}`

/**
 * `/media` (CONTRACT §2.6). Mounted before the API's JSON guard: each route names its own parser (JSON, multipart,
 * or none for the raw upload, whose body is streamed to storage).
 */
export const mediaRoutes = (deps: Deps) => {
  const storage = deps.media
  return new Elysia({ name: "media", prefix: "/media", detail: { tags: ["media"] } })
    .use(authPlugin(deps))
    .post(
      "/presigned-url",
      ({ principal, body, request }) =>
        presignUpload(deps, storage, principal.userId, body, baseUrl(deps, request)),
      {
        auth: true,
        parse: "json",
        body: presignBody,
        response: presignResponse,
        detail: { summary: "Step 1 of 3: an upload URL for a raw PUT, and the file's future URL" },
      },
    )
    .put(
      "/blob/:folder/:user/:year/:month/:name",
      ({ params, query, request }) => receiveUpload(deps, storage, keyOf(params), query, request),
      {
        // The body is streamed to storage by the handler, whatever its Content-Type.
        parse: () => ({}),
        params: keyParams,
        query: blobQuery,
        response: blobResponse,
        detail: {
          summary: "Step 2 of 3 (local storage): the raw file; the signed URL is the credential",
          description: "403 when the signature is wrong or expired, 413 over the folder's size limit.",
          requestBody: {
            required: true,
            content: { "*/*": { schema: { type: "string", format: "binary" } } },
          },
        },
      },
    )
    .post(
      "/complete-upload",
      ({ principal, body, request }) =>
        completeUpload(deps, storage, principal.userId, body, baseUrl(deps, request)),
      {
        auth: true,
        parse: "json",
        body: completeBody,
        response: mediaResponse,
        detail: {
          summary:
            "Step 3 of 3: check the uploaded file (sniffed type, size), strip image metadata, record it",
        },
      },
    )
    .post(
      "/upload",
      ({ principal, body, request }) =>
        uploadFile(deps, storage, principal.userId, body.file, baseUrl(deps, request)),
      {
        auth: true,
        parse: "formdata",
        body: uploadBody,
        response: mediaResponse,
        detail: { summary: "Multipart upload (field file); the folder follows the sniffed type" },
      },
    )
    .get(
      "/files/:folder/:user/:year/:month/:name",
      ({ params, query, request }) =>
        serveFile(deps, storage, keyOf(params), request, query.download === "1"),
      {
        params: keyParams,
        query: fileQuery,
        detail: {
          summary: "A file (the file_url): ranges, ETag, caching; its unguessable URL is the credential",
        },
      },
    )
    .get("/:id", ({ principal, params }) => getMedia(deps, principal.userId, params.id), {
      auth: true,
      params: idParams,
      response: mediaResponse,
      detail: { summary: "The caller's media (others: 404)" },
    })
    .delete("/:id", ({ principal, params }) => deleteMedia(deps, storage, principal.userId, params.id), {
      auth: true,
      params: idParams,
      response: deleteResponse,
      detail: { summary: "Delete the caller's media and its files (others: 404)" },
    })
    .get("/:id/download", ({ principal, params }) => downloadLink(deps, principal.userId, params.id), {
      auth: true,
      params: idParams,
      response: downloadResponse,
      detail: { summary: "A link that downloads the caller's file as an attachment" },
    })
}
