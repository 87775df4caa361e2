/**
 * Who the dashboard is logged in as (browser side): the login form, the name
 * and role in the header, logout, the banner of a replica that runs without
 * authentication, and which actions the role may use. The session itself is
 * an HttpOnly cookie the script never sees: `POST /v1/session` sets it, the
 * API and the event stream read it, `DELETE /v1/session` clears it.
 */

import type { SessionView } from '@berth/core';
import { mayCall } from './access.js';
import { $ } from './dom.js';

let current: SessionView | null = null;

/** True when the session may send `method` to route pattern `route` (e.g. `/v1/pods/:id`): the API's own table decides. */
export function may(method: string, route: string): boolean {
  if (current === null) return false;
  // The browser never scrapes /metrics, so its setting does not matter here.
  return mayCall(current.role, method, route, { metricsPublic: false });
}

/** Shows who is logged in and the actions their role allows, and the dashboard itself. */
export function showSession(s: SessionView): void {
  current = s;
  $('login').hidden = true;
  $('who').hidden = s.auth === 'off';
  $('who-name').textContent = s.name;
  $('who-role').textContent = s.role;
  $('logout').hidden = s.via !== 'cookie';
  $('insecure').hidden = !s.insecure;
  document.body.dataset['role'] = s.role;
  $('run-pod').hidden = !may('POST', '/v1/pods');
  $('add-node').hidden = !may('POST', '/v1/nodes');
  $('app').hidden = false;
}

/** Hides everything the session showed and asks for a token; `message` says why (a wrong token, a session that ended). */
export function showLoginForm(message?: string): void {
  current = null;
  delete document.body.dataset['role'];
  $('app').hidden = true;
  $('who').hidden = true;
  $('login').hidden = false;
  const error = $('login-error');
  error.textContent = message ?? '';
  error.hidden = message === undefined;
  $<HTMLInputElement>('login-token').focus();
}

/** The `message` of an error answer (`{error, message}`), or its status. */
export async function errorMessage(res: Response): Promise<string> {
  try {
    const body = (await res.json()) as { message?: string };
    if (typeof body.message === 'string') return body.message;
  } catch {
    /* not JSON */
  }
  return `the controller answered ${res.status}`;
}

/**
 * Wires the login form and the logout button. `onLogin` runs with the new
 * session; `onLogout` once the cookie is cleared.
 */
export function wireSession(onLogin: (s: SessionView) => void, onLogout: () => void, onError: (message: string) => void): void {
  const form = $<HTMLFormElement>('login-form');
  const input = $<HTMLInputElement>('login-token');
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const submit = form.querySelector('button[type=submit]') as HTMLButtonElement;
    submit.disabled = true;
    $('login-error').hidden = true;
    fetch('/v1/session', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: input.value.trim() }) })
      .then(async (res) => {
        if (!res.ok) return showLoginForm(res.status === 401 ? 'That token is not valid (unknown or revoked).' : await errorMessage(res));
        input.value = '';
        onLogin((await res.json()) as SessionView);
      })
      .catch((err: unknown) => showLoginForm(`cannot reach the controller: ${(err as Error).message}`))
      .finally(() => (submit.disabled = false));
  });
  $('logout').addEventListener('click', () => {
    fetch('/v1/session', { method: 'DELETE' })
      .then(async (res) => (res.ok ? onLogout() : onError(await errorMessage(res))))
      .catch((err: unknown) => onError(`log out: ${(err as Error).message}`));
  });
}
