import type { ApiError } from './client.js';

/** How a token can be given, for a 401: every source `resolveConfig` reads. */
export const TOKEN_HELP =
  'give a token with --token TOKEN, $BERTH_TOKEN, --token-file FILE or $BERTH_TOKEN_FILE, ' +
  'or save one in a context: berth config set-context NAME --server URL --token-file FILE --use';

/**
 * What `berth` prints for an API error, after `Error from server (CODE): `.
 * The API's message, and for the errors of auth what to do about them: how
 * to give a token (401; which token was refused when one was sent), the role
 * needed (403, the API names it), when to retry (429). Pure.
 */
export function explainApiError(err: ApiError): string {
  const sent = err.context.tokenSource;
  switch (err.status) {
    case 401:
      return sent === undefined
        ? `${err.message}\n${TOKEN_HELP}`
        : `the token from ${sent} was refused: it is unknown or revoked (the server said: ${err.message})\n${TOKEN_HELP}`;
    case 403: {
      const d = err.details as { needs?: unknown } | undefined;
      const needs = typeof d?.needs === 'string' ? d.needs : undefined;
      return needs === undefined ? err.message : `${err.message}\nan admin can give you one: berth create token NAME --role ${needs}`;
    }
    case 429: {
      const after = err.context.retryAfterSeconds;
      // The API's message may say when in words ("retry in 1 second"): the header says it in seconds.
      return after === undefined ? err.message : `${err.message.replace(/[\s:;,(]*retry in [^:;]*$/i, '')}: retry in ${after} s`;
    }
    default:
      return err.message;
  }
}
