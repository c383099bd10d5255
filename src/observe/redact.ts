/**
 * Secrets out of URLs before they are logged or shown. Its own module, without pino, so code
 * that only shows URLs (option checks, URL parsing) does not load the logger.
 */

/** Query parameters whose values are secrets (`sentinel://...?sentinelPassword=...`). */
const SECRET_PARAM = /([?&](?:[a-z]*pass(?:word)?|auth)=)[^&#]*/gi;

/**
 * `redis://user:secret@host:1` -> `redis://user:***@host:1`, and
 * `sentinel://h:26379/m?sentinelPassword=x` -> `...?sentinelPassword=***`.
 * The userinfo ends at the last `@` of the authority, so an unescaped `@` in a password is
 * still hidden.
 */
export function redactUrl(url: string): string {
  const q = url.indexOf('?');
  const head = q < 0 ? url : url.slice(0, q);
  const query = q < 0 ? '' : url.slice(q).replace(SECRET_PARAM, '$1***');
  const scheme = /^[a-z][a-z0-9+.-]*:\/\//i.exec(head)?.[0];
  if (scheme === undefined) return head + query;
  const slash = head.indexOf('/', scheme.length);
  const authority = head.slice(scheme.length, slash < 0 ? head.length : slash);
  const at = authority.lastIndexOf('@');
  if (at < 0) return head + query;
  const userinfo = authority.slice(0, at);
  const colon = userinfo.indexOf(':');
  const shown = colon < 0 ? userinfo : `${userinfo.slice(0, colon)}:***`;
  return `${scheme}${shown}${head.slice(scheme.length + at)}${query}`;
}
