import type { FastifyInstance } from 'fastify';
import { errors } from '@berth/core';

/** Deepest nesting of arrays and objects a JSON body may have. */
export const MAX_JSON_DEPTH = 64;

/**
 * Replaces the app's JSON body parser with Fastify's own behind a nesting
 * check: `JSON.parse` copes with a body of 100,000 nested arrays, but every
 * recursive walk after it (`JSON.stringify` of a job's body, a serializer)
 * overflows the stack on it, which is a 500 where a 400 belongs.
 */
export function installJsonBodyParser(app: FastifyInstance, maxDepth: number = MAX_JSON_DEPTH): void {
  const parse = app.getDefaultJsonParser(app.initialConfig.onProtoPoisoning ?? 'error', app.initialConfig.onConstructorPoisoning ?? 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => {
    const text = body as string;
    if (nestingExceeds(text, maxDepth)) return done(errors.validation(`the request body nests arrays or objects deeper than ${maxDepth} levels`), undefined);
    parse(req, text, done);
  });
}

/** True when the JSON text opens more than `max` arrays or objects at once (brackets inside strings do not count). */
export function nestingExceeds(text: string, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92 /* \ */) i++;
      else if (c === 34 /* " */) inString = false;
    } else if (c === 34) inString = true;
    else if (c === 91 /* [ */ || c === 123 /* { */) {
      if (++depth > max) return true;
    } else if (c === 93 /* ] */ || c === 125 /* } */) depth--;
  }
  return false;
}
