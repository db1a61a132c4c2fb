/**
 * The page's credential for a server with access control: a token given in the page's URL
 * (`?token=…`). Without one, a `livehub_token` cookie, if the deployment sets it, is sent by the
 * browser on its own, for the live connection and the REST reads alike.
 */
export const PAGE_TOKEN: string | undefined = new URLSearchParams(location.search).get("token") ?? undefined;

/** Headers that carry the page's token on a `fetch`, if it has one. */
export function authHeaders(): Record<string, string> {
  return PAGE_TOKEN ? { authorization: `Bearer ${PAGE_TOKEN}` } : {};
}
