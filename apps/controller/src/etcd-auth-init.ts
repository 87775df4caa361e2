#!/usr/bin/env node
import fs from 'node:fs';
import path from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { ensureEtcdAuth, explainUnavailable, isUnavailable, loadEtcdCredentials, passwordInFile, type EtcdAuthPasswords } from '@berth/store';

/*
 * `berth-entrypoint etcd-auth`: a one-shot step before Berth's components
 * start (compose.ha.yml's etcd-auth-init). Makes the password files (kept on
 * later runs), creates etcd's roles and users root, controller, agent and the
 * role-less health (applyEtcdAuth) and turns etcd's auth on; run again, it
 * logs in as root and re-applies the roles as they are now.
 */

/** `uid:gid` of --owner. */
function owner(raw: string): { uid: number; gid: number } {
  const m = /^(\d+):(\d+)$/.exec(raw);
  if (!m) throw new InvalidArgumentError(`--owner must be uid:gid (numbers), got ${JSON.stringify(raw)}`);
  return { uid: Number(m[1]), gid: Number(m[2]) };
}

const cmd = new Command('berth-etcd-auth')
  .description("Turns etcd's auth on with Berth's roles and users; writes each user's password file (made once, kept after).")
  .addOption(new Option('--etcd <urls>', 'etcd endpoints, comma-separated').env('BERTH_ETCD').default('http://127.0.0.1:2379'))
  .addOption(new Option('--root-password-file <file>', "etcd root's password (made when missing); only this step needs it").env('BERTH_ETCD_ROOT_PASSWORD_FILE').makeOptionMandatory())
  .addOption(new Option('--controller-password-file <file>', "the controllers' etcd password (made when missing)").env('BERTH_ETCD_CONTROLLER_PASSWORD_FILE').makeOptionMandatory())
  .addOption(new Option('--agent-password-file <file>', "the agents' etcd password (made when missing)").env('BERTH_ETCD_AGENT_PASSWORD_FILE').makeOptionMandatory())
  .addOption(
    new Option('--owner <uid:gid>', 'hand the controller and agent password files (and their directories) to this user: the controllers run unprivileged and read both (they start agents too)')
      .env('BERTH_ETCD_SECRETS_OWNER')
      .argParser(owner),
  )
  .addOption(new Option('--timeout <seconds>', 'wait this long for etcd to answer').env('BERTH_ETCD_AUTH_TIMEOUT').default(60).argParser(Number))
  .addOption(new Option('--etcd-ca <file>', "CA certificate (PEM) that signed etcd's server certificates: connect with TLS").env('BERTH_ETCD_CA'))
  .addOption(new Option('--etcd-cert <file>', "root's client certificate (PEM), for an etcd that requires one (with --etcd-key)").env('BERTH_ETCD_CERT'))
  .addOption(new Option('--etcd-key <file>', "the client certificate's private key (PEM)").env('BERTH_ETCD_KEY'))
  .showHelpAfterError('(run with --help for usage)');
cmd.parse(process.argv);
const o = cmd.opts<{
  etcd: string;
  rootPasswordFile: string;
  controllerPasswordFile: string;
  agentPasswordFile: string;
  owner?: { uid: number; gid: number };
  timeout: number;
  etcdCa?: string;
  etcdCert?: string;
  etcdKey?: string;
}>();

function say(msg: string): void {
  process.stdout.write(`berth etcd-auth: ${msg}\n`);
}

try {
  const passwords: EtcdAuthPasswords = {
    root: passwordInFile(o.rootPasswordFile),
    controller: passwordInFile(o.controllerPasswordFile),
    agent: passwordInFile(o.agentPasswordFile),
  };
  if (o.owner !== undefined) {
    for (const file of [o.controllerPasswordFile, o.agentPasswordFile]) {
      for (const p of [file, path.dirname(file)]) fs.chownSync(p, o.owner.uid, o.owner.gid);
      fs.chmodSync(path.dirname(file), 0o700);
    }
  }
  const tls = loadEtcdCredentials({ etcdCa: o.etcdCa, etcdCert: o.etcdCert, etcdKey: o.etcdKey }) ?? {};
  const deadline = Date.now() + o.timeout * 1000;
  for (;;) {
    try {
      await ensureEtcdAuth(o.etcd, passwords, tls);
      break;
    } catch (err) {
      // etcd's members may still be forming a cluster; anything else is for the operator.
      if (!isUnavailable(err) || Date.now() > deadline) throw err;
      say(`waiting for etcd: ${explainUnavailable(err)}`);
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
  say(`auth on at ${o.etcd}: users root, controller, agent, health; password files ${o.controllerPasswordFile}, ${o.agentPasswordFile}`);
  process.exit(0);
} catch (err) {
  process.stderr.write(`berth etcd-auth: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
}
