import fs from 'node:fs';
import path from 'node:path';
import { StringDecoder } from 'node:string_decoder';

/** Chunk size for reading a log backwards (tail). */
const TAIL_CHUNK = 64 * 1024;

export function fileSize(file: string): number {
  try {
    return fs.statSync(file).size;
  } catch {
    return 0;
  }
}

export function readRange(file: string, start: number, end: number): Buffer {
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.alloc(end - start);
    const n = fs.readSync(fd, buf, 0, buf.length, start);
    return buf.subarray(0, n);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * The last `tail` lines of a file up to byte `end` (all of it without
 * `tail`), read backwards in chunks so a large log is not loaded whole.
 */
export async function readTail(file: string, tail: number | undefined, end = fileSize(file)): Promise<string> {
  if (end === 0 || tail === 0) return '';
  if (tail === undefined) return readRange(file, 0, end).toString('utf8');
  let start = end;
  let newlines = 0;
  const chunks: Buffer[] = [];
  // A trailing newline ends the last line; it does not start another.
  const wanted = tail + 1;
  while (start > 0 && newlines < wanted) {
    const from = Math.max(0, start - TAIL_CHUNK);
    const chunk = readRange(file, from, start);
    chunks.unshift(chunk);
    start = from;
    for (const b of chunk) if (b === 0x0a) newlines += 1;
  }
  const text = Buffer.concat(chunks).toString('utf8');
  const lines = text.split('\n');
  const trailing = lines.at(-1) === '';
  if (trailing) lines.pop();
  return lines.slice(-tail).join('\n') + (trailing ? '\n' : '');
}

/**
 * The last `tail` lines of a log file, then what is appended to it, until
 * `signal` aborts or the file is gone once `held()` says its pod has left
 * the runtime. Wakes on inotify events of the file's directory (appends,
 * and the directory's removal).
 */
export async function* followFile(file: string, tail: number | undefined, held: () => boolean, signal: AbortSignal): AsyncIterable<string> {
  let offset = fileSize(file);
  const first = await readTail(file, tail, offset);
  if (first.length > 0) yield first;
  let wake: (() => void) | undefined;
  const poke = () => wake?.();
  let watcher: fs.FSWatcher | undefined;
  try {
    watcher = fs.watch(path.dirname(file), poke);
    watcher.on('error', poke);
  } catch {
    return; // the directory is gone: the pod was removed
  }
  signal.addEventListener('abort', poke);
  const decoder = new StringDecoder('utf8');
  try {
    while (!signal.aborted && (held() || fs.existsSync(file))) {
      const size = fileSize(file);
      if (size < offset) offset = 0; // truncated or recreated
      if (size > offset) {
        const chunk = readRange(file, offset, size);
        offset = size;
        const text = decoder.write(chunk);
        if (text.length > 0) yield text;
        continue;
      }
      // The timer only bounds how long a missed inotify event could delay output (e.g. on overlay filesystems).
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 1000);
        wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
  } finally {
    watcher.close();
    signal.removeEventListener('abort', poke);
  }
}
