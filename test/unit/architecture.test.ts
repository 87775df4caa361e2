import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';

// The structure ARCHITECTURE.md promises, checked on the sources themselves:
// dependencies between packages point one way, no module imports itself back
// through a circle, files stay small enough to read (or say at their top why
// not), comments explain from inside the repository, and errors are logged as
// objects so their stack and cause reach the log.

const ROOT = path.resolve(import.meta.dirname, '../../..');
/** Longest a source file may be without a reason written at its top. */
const MAX_LINES = 400;
/** The marker of that reason, in the file's first comment. */
const LONG_FILE_REASON = 'Why this file is long:';

/** Which workspace packages each package may import (the arrows of ARCHITECTURE.md's package table). */
const ALLOWED: Record<string, string[]> = {
  '@berth/core': [],
  '@berth/scheduler': ['@berth/core'],
  '@berth/store': ['@berth/core'],
  '@berth/http': ['@berth/core'],
  '@berth/devcluster': ['@berth/core', '@berth/store'],
  '@berth/agent': ['@berth/core', '@berth/store', '@berth/http'],
  '@berth/controller': ['@berth/core', '@berth/store', '@berth/scheduler', '@berth/http'],
  '@berth/cli': ['@berth/core'],
};

interface SourceFile {
  file: string;
  pkg: string;
  text: string;
}

function walk(dir: string, out: string[] = []): string[] {
  if (!fs.existsSync(dir)) return out;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === 'node_modules' || entry.name === 'dist') continue;
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) walk(full, out);
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) out.push(full);
  }
  return out;
}

function sources(): SourceFile[] {
  const out: SourceFile[] = [];
  for (const group of ['libs', 'apps']) {
    for (const name of fs.readdirSync(path.join(ROOT, group))) {
      const dir = path.join(ROOT, group, name);
      const manifest = path.join(dir, 'package.json');
      if (!fs.existsSync(manifest)) continue;
      const pkg = (JSON.parse(fs.readFileSync(manifest, 'utf8')) as { name: string }).name;
      for (const file of [...walk(path.join(dir, 'src')), ...walk(path.join(dir, 'ui'))]) {
        out.push({ file, pkg, text: fs.readFileSync(file, 'utf8') });
      }
    }
  }
  return out;
}

const files = sources();
const rel = (f: string) => path.relative(ROOT, f);
const IMPORT = /(?:^|\n)\s*(?:import|export)\s[^;]*?from\s+'([^']+)'/g;

function importsOf(f: SourceFile): string[] {
  return [...f.text.matchAll(IMPORT)].map((m) => m[1]!);
}

t.test('the sources were found', async (t) => {
  t.ok(files.length > 50, `${files.length} files under apps/ and libs/`);
});

t.test('workspace packages import only the packages below them', async (t) => {
  const bad: string[] = [];
  for (const f of files) {
    for (const spec of importsOf(f)) {
      if (!spec.startsWith('@berth/')) continue;
      const target = spec.split('/').slice(0, 2).join('/');
      const allowed = ALLOWED[f.pkg];
      if (allowed === undefined) bad.push(`${rel(f.file)}: package ${f.pkg} is not in the table of this test`);
      else if (target !== f.pkg && !allowed.includes(target)) bad.push(`${rel(f.file)} (${f.pkg}) imports ${target}`);
    }
  }
  t.same(bad, []);
});

t.test('no import circle between modules', async (t) => {
  const graph = new Map<string, string[]>();
  for (const f of files) {
    const deps: string[] = [];
    for (const spec of importsOf(f)) {
      if (!spec.startsWith('.')) continue;
      const target = path.resolve(path.dirname(f.file), spec).replace(/\.js$/, '.ts');
      if (fs.existsSync(target)) deps.push(target);
      else if (fs.existsSync(path.join(target.replace(/\.ts$/, ''), 'index.ts'))) deps.push(path.join(target.replace(/\.ts$/, ''), 'index.ts'));
    }
    graph.set(f.file, deps);
  }
  // Tarjan's strongly connected components: every component of more than one module is a circle.
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const circles: string[][] = [];
  const visit = (v: string): void => {
    idx.set(v, index);
    low.set(v, index);
    index += 1;
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        scc.push(rel(w));
      } while (w !== v);
      if (scc.length > 1 || (graph.get(v) ?? []).includes(v)) circles.push(scc.sort());
    }
  };
  for (const v of graph.keys()) if (!idx.has(v)) visit(v);
  t.same(circles, [], 'modules that import each other, directly or around a circle');
});

t.test(`no source file over ${MAX_LINES} lines without saying why at its top`, async (t) => {
  const long = files
    .map((f) => ({ f, lines: f.text.split('\n').length }))
    .filter(({ f, lines }) => lines > MAX_LINES && !f.text.slice(0, 2000).includes(LONG_FILE_REASON))
    .map(({ f, lines }) => `${rel(f.file)}: ${lines} lines`);
  t.same(long, []);
});

t.test('comments explain from inside the repository', async (t) => {
  const outside = /\bSPEC(\.md)?\b|\bseeds\/|\bseed files?\b/;
  const refs: string[] = [];
  for (const f of files) {
    f.text.split('\n').forEach((line, i) => {
      const comment = /\/\/.*$|\/\*.*$|^\s*\*.*$/.exec(line)?.[0];
      if (comment !== undefined && outside.test(comment)) refs.push(`${rel(f.file)}:${i + 1}: ${comment.trim()}`);
    });
  }
  t.same(refs, [], 'references to documents that are not in this repository');
});

t.test('errors are logged as objects, not as their message', async (t) => {
  const flattened = /\berr:\s*(?:err\.message|String\(err\)|err instanceof Error \? err\.message)/;
  const sites: string[] = [];
  for (const f of files) {
    f.text.split('\n').forEach((line, i) => {
      if (flattened.test(line)) sites.push(`${rel(f.file)}:${i + 1}`);
    });
  }
  t.same(sites, [], 'log with { err } so pino keeps the stack, the code and the cause');
});
