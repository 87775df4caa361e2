/** DOM helpers the dashboard's modules share. */

export const $ = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (el === null) throw new Error(`missing #${id}`);
  return el as T;
};

/** Builds an element: h('td', {class: 'x'}, 'text', child). */
export function h(tag: string, attrs: Record<string, string | undefined> = {}, ...children: Array<Node | string>): HTMLElement {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined) el.setAttribute(k, v);
  for (const c of children) el.append(c);
  return el;
}

export function age(iso: string | null): string {
  if (iso === null) return '—';
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${s % 60 ? `${s % 60}s` : ''}`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d`;
}

/** Runs an API call from a button (`act` in app.ts): disables it meanwhile, shows an error answer's message. */
export type Act = (button: HTMLButtonElement, method: string, path: string, body?: unknown) => void;
