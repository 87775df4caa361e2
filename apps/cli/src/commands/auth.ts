import { ROLES, type Role } from '@berth/core';
import { Option } from '@commander-js/extra-typings';
import { AUDIT_COLUMNS, TOKEN_COLUMNS, auditRow, describeSession, parseSince, tokenRow } from '../render-auth.js';
import { renderTable } from '../table.js';
import { parseInteger } from '../units.js';
import type { CommandContext, Program } from './context.js';
import { arg, outputOption, structured, type Output } from './options.js';

/** `berth get tokens`: names and roles (the API never gives secrets back). */
export async function getTokens(ctx: CommandContext, format: Output): Promise<void> {
  const tokens = await ctx.client().tokens();
  const asData = structured(format);
  if (asData) return ctx.printData({ items: tokens }, asData);
  if (tokens.length === 0) return ctx.err('No tokens found.');
  const now = Date.now();
  ctx.out(renderTable(TOKEN_COLUMNS, tokens.sort((a, b) => a.name.localeCompare(b.name)).map((t) => tokenRow(t, now))));
}

export const roleOption = () => new Option('--role <role>', 'viewer: reads; operator: also pods, services, jobs; admin: also nodes, tokens, audit').choices(ROLES).makeOptionMandatory();

/** `berth create token NAME --role R`: the secret is printed once, on stdout alone, so `$(...)` captures just it. */
export async function createToken(ctx: CommandContext, name: string, role: Role, format: Output): Promise<void> {
  const created = await ctx.client().createToken({ name, role });
  const asData = structured(format);
  if (asData) return ctx.printData(created, asData);
  ctx.err(`token/${created.name} created (role ${created.role}). Its secret follows: it is shown only this once, so store it now.`);
  ctx.out(created.token);
}

/** `berth whoami` and `berth audit`. */
export function registerAuth(program: Program, ctx: CommandContext): void {
  program
    .command('whoami')
    .description('Who the server takes you for: token name and role, and whether auth is on (GET /v1/session)')
    .addOption(outputOption())
    .action(async (opts) => {
      const cfg = ctx.config();
      const session = await ctx.client().session();
      const asData = structured(opts.output);
      if (asData) return ctx.printData({ server: cfg.server, ...session }, asData);
      ctx.out(describeSession(session, cfg.server, cfg.tokenSource, ctx.c));
    });

  program
    .command('audit')
    .summary('The audit trail: every API mutation, refused ones included (admin)')
    .description('The audit trail (GET /v1/audit, admin): every API mutation, allowed or refused, with who sent it, from which replica, and the status answered; oldest first')
    .option('--since <duration|time>', 'records since then: a duration back from now (10m, 1h, 2d) or a time (2026-01-02T03:04:05Z); default: the newest --limit', arg((s) => parseSince(s)))
    .option('--actor <name>', "only this token's records (anonymous: requests without a valid token)")
    .option('--limit <n>', 'at most this many (default 500)', arg((s) => parseInteger(s, '--limit', 1, 5000)))
    .addOption(new Option('-o, --output <format>', 'json or yaml').choices(['json', 'yaml'] as const))
    .action(async (opts) => {
      const records = await ctx.client().audit({ since: opts.since, actor: opts.actor, limit: opts.limit });
      if (opts.output) return ctx.printData({ items: records }, opts.output);
      if (records.length === 0) return ctx.err('No audit records found.');
      ctx.out(renderTable(AUDIT_COLUMNS, records.map((r) => auditRow(r, ctx.c))));
    });
}
