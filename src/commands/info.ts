/** INFO reply parsing: facts about a server's INFO text, no I/O. */

/** `field:value` lines of an INFO reply (section headers and blank lines skipped). */
export function parseInfo(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\r\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const i = line.indexOf(':');
    if (i > 0) out.set(line.slice(0, i), line.slice(i + 1));
  }
  return out;
}

/** Sum of `keys=` over the `dbN:keys=..,expires=..` lines of INFO keyspace. */
export function keyspaceTotal(info: Map<string, string>): number {
  let total = 0;
  for (const [k, v] of info) {
    if (!/^db\d+$/.test(k)) continue;
    const m = /(?:^|,)keys=(\d+)/.exec(v);
    if (m) total += Number(m[1]);
  }
  return total;
}
