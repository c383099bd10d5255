/**
 * A strict parser for the YAML the repository writes (docker-compose.yml, the Kubernetes example in
 * the README), so that the tests need no YAML dependency: block mappings and sequences, one-line
 * flow collections (`[a, b]`, `{ a: b }`), quoted and plain scalars, comments, `---` documents.
 * Whatever else YAML allows (anchors, aliases, tags, block scalars, multi-line scalars, tabs,
 * duplicate keys) throws, and so do plain scalars that YAML 1.1 (Kubernetes, Compose) and 1.2 read
 * differently (`yes`, `on`, `0400`, `6380:6379`, `True`): quote them. So what this accepts, a real
 * parser reads the same way.
 */
export type YamlValue = string | number | boolean | null | YamlValue[] | { [key: string]: YamlValue };

interface Line {
  indent: number;
  text: string;
  no: number;
}

class YamlSubsetError extends Error {
  constructor(no: number, message: string) {
    super(`yaml line ${no}: ${message}`);
  }
}

/** Every document of a `---`-separated stream (empty documents left out). */
export function parseYamlDocuments(source: string): YamlValue[] {
  const docs: Line[][] = [[]];
  source.split('\n').forEach((raw, i) => {
    const no = i + 1;
    if (raw.includes('\t')) throw new YamlSubsetError(no, 'tab character');
    if (/^---\s*$/.test(raw)) {
      docs.push([]);
      return;
    }
    const text = stripComment(raw, no).trimEnd();
    if (text.trim() === '') return;
    const indent = text.length - text.trimStart().length;
    docs[docs.length - 1]!.push({ indent, text: text.trimStart(), no });
  });
  return docs.filter((d) => d.length > 0).map((lines) => {
    const p = new BlockParser(lines);
    const value = p.block(lines[0]!.indent);
    if (p.pos < lines.length) throw new YamlSubsetError(lines[p.pos]!.no, 'unexpected indentation');
    return value;
  });
}

/** The only document; throws when there are several. */
export function parseYaml(source: string): YamlValue {
  const docs = parseYamlDocuments(source);
  if (docs.length !== 1) throw new Error(`expected one YAML document, found ${docs.length}`);
  return docs[0]!;
}

function stripComment(line: string, no: number): string {
  let quote: string | null = null;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quote !== null) {
      if (c === '\\' && quote === '"') i++;
      else if (c === quote) quote = null;
    } else if (c === '"' || c === "'") {
      quote = c;
    } else if (c === '#' && (i === 0 || line[i - 1] === ' ')) {
      return line.slice(0, i);
    }
  }
  if (quote !== null) throw new YamlSubsetError(no, 'unterminated quote (multi-line scalars are not supported)');
  return line;
}

/** `key: rest` or `key:` at the start of a line: the key and what follows; null when the line is no mapping entry. */
function splitEntry(text: string, no: number): { key: string; rest: string } | null {
  if (text.startsWith('"') || text.startsWith("'")) {
    const s = new FlowParser(text, no);
    const key = s.quoted();
    if (!/^:( |$)/.test(text.slice(s.pos))) return null;
    return { key, rest: text.slice(s.pos + 1).trim() };
  }
  if (/^[[{]/.test(text)) return null;
  const m = /^([^\s:][^:]*?):( +|$)(.*)$/.exec(text);
  if (m === null) return null;
  if (m[1]!.startsWith('?')) throw new YamlSubsetError(no, 'complex keys are not supported');
  return { key: m[1]!, rest: m[3]! };
}

class BlockParser {
  pos = 0;
  constructor(private readonly lines: Line[]) {}

  private peek(): Line | undefined {
    return this.lines[this.pos];
  }

  block(indent: number): YamlValue {
    const line = this.peek()!;
    if (line.indent !== indent) throw new YamlSubsetError(line.no, 'unexpected indentation');
    if (isSeqItem(line.text)) return this.sequence(indent);
    if (splitEntry(line.text, line.no) !== null) return this.mapping(indent);
    if (this.lines.length - this.pos > 1 && this.lines[this.pos + 1]!.indent >= indent) {
      throw new YamlSubsetError(line.no, 'multi-line scalars are not supported');
    }
    this.pos++;
    return inlineValue(line.text, line.no);
  }

  private mapping(indent: number): YamlValue {
    const out: { [key: string]: YamlValue } = {};
    for (let line = this.peek(); line !== undefined && line.indent === indent && !isSeqItem(line.text); line = this.peek()) {
      const entry = splitEntry(line.text, line.no);
      if (entry === null) throw new YamlSubsetError(line.no, `expected "key: value", found ${JSON.stringify(line.text)}`);
      if (Object.hasOwn(out, entry.key)) throw new YamlSubsetError(line.no, `duplicate key ${JSON.stringify(entry.key)}`);
      this.pos++;
      out[entry.key] = entry.rest !== '' ? inlineValue(entry.rest, line.no) : this.nested(indent, true);
    }
    return out;
  }

  private sequence(indent: number): YamlValue {
    const out: YamlValue[] = [];
    for (let line = this.peek(); line !== undefined && line.indent === indent && isSeqItem(line.text); line = this.peek()) {
      const rest = line.text.slice(1).trimStart();
      if (rest === '') {
        this.pos++;
        out.push(this.nested(indent, false));
      } else if (isSeqItem(rest)) {
        throw new YamlSubsetError(line.no, 'nested "- -" sequences are not supported');
      } else if (splitEntry(rest, line.no) !== null) {
        // `- key: value`: a mapping whose lines are indented like `key`.
        const inner = indent + (line.text.length - rest.length);
        this.lines[this.pos] = { indent: inner, text: rest, no: line.no };
        out.push(this.mapping(inner));
      } else {
        this.pos++;
        out.push(inlineValue(rest, line.no));
      }
    }
    return out;
  }

  /** The value of `key:` or `-` with nothing after it: a block below, a sequence at the key's own indent, else null. */
  private nested(indent: number, sequenceMayAlign: boolean): YamlValue {
    const next = this.peek();
    if (next === undefined) return null;
    if (next.indent > indent) return this.block(next.indent);
    if (sequenceMayAlign && next.indent === indent && isSeqItem(next.text)) return this.sequence(indent);
    return null;
  }
}

function isSeqItem(text: string): boolean {
  return text === '-' || text.startsWith('- ');
}

function inlineValue(text: string, no: number): YamlValue {
  if (/^[|>]/.test(text)) throw new YamlSubsetError(no, 'block scalars are not supported');
  const p = new FlowParser(text, no);
  const v = p.value(false);
  p.end();
  return v;
}

/** One line: a flow collection, a quoted scalar or a plain scalar. */
class FlowParser {
  pos = 0;
  constructor(private readonly text: string, private readonly no: number) {}

  private fail(message: string): never {
    throw new YamlSubsetError(this.no, `${message} in ${JSON.stringify(this.text)}`);
  }

  private skipSpaces(): void {
    while (this.text[this.pos] === ' ') this.pos++;
  }

  end(): void {
    this.skipSpaces();
    if (this.pos !== this.text.length) this.fail('unexpected text after the value');
  }

  value(inFlow: boolean): YamlValue {
    this.skipSpaces();
    const c = this.text[this.pos];
    if (c === '[') return this.flowSequence();
    if (c === '{') return this.flowMapping();
    if (c === '"' || c === "'") return this.quoted();
    return this.plain(inFlow);
  }

  quoted(): string {
    const q = this.text[this.pos++];
    let out = '';
    for (;;) {
      if (this.pos >= this.text.length) this.fail('unterminated quote');
      const c = this.text[this.pos++]!;
      if (q === "'" && c === "'") {
        if (this.text[this.pos] !== "'") return out;
        out += "'";
        this.pos++;
      } else if (q === '"' && c === '"') {
        return out;
      } else if (q === '"' && c === '\\') {
        const e = this.text[this.pos++];
        const simple: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', n: '\n', t: '\t', r: '\r', '0': '\0' };
        if (e === undefined || !(e in simple)) this.fail(`unsupported escape \\${e ?? ''}`);
        out += simple[e]!;
      } else {
        out += c;
      }
    }
  }

  private plain(inFlow: boolean): YamlValue {
    const stop = inFlow ? /[,\]}]|: |:$/ : /: |:$/;
    const rest = this.text.slice(this.pos);
    const m = stop.exec(rest);
    const raw = (m === null ? rest : rest.slice(0, m.index)).trim();
    this.pos += m === null ? rest.length : m.index;
    if (inFlow && raw.endsWith(':')) this.fail('a flow mapping entry needs a space after ":"');
    return resolvePlain(raw, () => this.fail(`ambiguous plain scalar ${JSON.stringify(raw)}: quote it`));
  }

  private flowSequence(): YamlValue[] {
    this.pos++;
    const out: YamlValue[] = [];
    this.skipSpaces();
    if (this.text[this.pos] === ']') {
      this.pos++;
      return out;
    }
    for (;;) {
      out.push(this.value(true));
      this.skipSpaces();
      const c = this.text[this.pos++];
      if (c === ']') return out;
      if (c !== ',') this.fail('expected "," or "]"');
    }
  }

  private flowMapping(): { [key: string]: YamlValue } {
    this.pos++;
    const out: { [key: string]: YamlValue } = {};
    this.skipSpaces();
    if (this.text[this.pos] === '}') {
      this.pos++;
      return out;
    }
    for (;;) {
      this.skipSpaces();
      const key = this.value(true);
      if (typeof key !== 'string') this.fail('a flow mapping key must be a string');
      if (this.text[this.pos] !== ':') this.fail('expected ":"');
      this.pos++;
      if (Object.hasOwn(out, key)) this.fail(`duplicate key ${JSON.stringify(key)}`);
      out[key] = this.value(true);
      this.skipSpaces();
      const c = this.text[this.pos++];
      if (c === '}') return out;
      if (c !== ',') this.fail('expected "," or "}"');
    }
  }
}

/** A plain scalar's value under both YAML 1.1 and 1.2, or `ambiguous()` when they differ or it is unsupported. */
function resolvePlain(raw: string, ambiguous: () => never): YamlValue {
  if (raw === '' || raw === 'null' || raw === '~') return null;
  if (raw === 'true') return true;
  if (raw === 'false') return false;
  if (/^-?(0|[1-9][0-9]*)$/.test(raw)) return Number(raw);
  if (/^-?(0|[1-9][0-9]*)\.[0-9]+$/.test(raw)) return Number(raw);
  if (/^(y|n|yes|no|on|off|true|false|null)$/i.test(raw)) ambiguous();
  if (/^[-+.]?[0-9][0-9_:.eExXoObB+-]*$/.test(raw) || /^[-+]?\.(inf|nan)$/i.test(raw)) ambiguous();
  if (/^[&*!|>%@`?,[\]{}#]/.test(raw) || /^- /.test(raw)) ambiguous();
  return raw;
}
