import { describe, expect, it } from 'vitest';
import { PartialScope, type PartialSyncSpec } from '../../src/sync/relay/selection.js';
import { WHOLE_SOURCE, globsMayMeet, literalPrefix, selectionOfFingerprint, selectionOverlap } from '../../src/sync/relay/overlap.js';

/** Through the registry's text, as two syncs see each other. */
const sel = (spec: PartialSyncSpec) => selectionOfFingerprint(new PartialScope(spec).fingerprint);
const overlaps = (a: PartialSyncSpec, b: PartialSyncSpec) => selectionOverlap(sel(a), sel(b)) !== null;

describe('literalPrefix', () => {
  it.each([
    ['abc', 'abc', true],
    ['ab*', 'ab', false],
    ['a?c', 'a', false],
    ['a[bc]d', 'a', false],
    ['a\\*b*', 'a*b', false],
    ['a\\[x', 'a[x', true],
    ['*', '', false],
    ['', '', true],
    ['trail\\', 'trail\\', true],
  ])('%s -> %s (exact %s)', (glob, text, exact) => {
    expect(literalPrefix(glob)).toEqual({ text, exact });
  });
});

describe('globsMayMeet', () => {
  it.each([
    ['a*', 'ab*', true],
    ['ab*', 'a*', true],
    ['a*', 'b*', false],
    ['x:*', 'y:*', false],
    ['user:*', 'user:1', true],
    ['user:1', 'user:2', false],
    ['user:1', 'user:1', true],
    ['ab', 'abc*', false],
    ['abc', 'ab*', true],
    ['*', 'anything', true],
    ['a?', 'b?', false],
    ['a?', 'ab', true],
    ['a[bc]*', 'ad*', true], // conservative: the class is not looked into
    ['a\\*', 'a*', true],
    ['a\\*', 'ab*', false],
    ['', '*', true],
    ['', 'a*', false],
  ])('%s vs %s: %s', (x, y, want) => {
    expect(globsMayMeet(x, y)).toBe(want);
    expect(globsMayMeet(y, x)).toBe(want);
  });
});

describe('selectionOverlap', () => {
  it('a full copy overlaps everything', () => {
    expect(selectionOverlap(WHOLE_SOURCE, WHOLE_SOURCE)).not.toBeNull();
    expect(selectionOverlap(WHOLE_SOURCE, sel({ keys: ['a*'] }))).not.toBeNull();
    expect(selectionOverlap(sel({ dbs: [3] }), WHOLE_SOURCE)).not.toBeNull();
    expect(selectionOfFingerprint('')).toBe(WHOLE_SOURCE);
    expect(selectionOfFingerprint(undefined)).toBe(WHOLE_SOURCE);
    expect(selectionOfFingerprint('{not json')).toBe(WHOLE_SOURCE);
  });

  it('by key name: the reported case and its neighbours', () => {
    expect(overlaps({ keys: ['a*'] }, { keys: ['ab*'] })).toBe(true);
    expect(overlaps({ keys: ['x:*'] }, { keys: ['y:*'] })).toBe(false);
    expect(overlaps({ keys: ['x:*', 'z:*'] }, { keys: ['y:*', 'z:1'] })).toBe(true);
    expect(overlaps({ keys: ['x:*', 'z:*'] }, { keys: ['y:*', 'w:1'] })).toBe(false);
    expect(overlaps({ prefixes: ['a'] }, { prefixes: ['ab'] })).toBe(true);
    expect(overlaps({ prefixes: ['a:'] }, { prefixes: ['b:'] })).toBe(false);
    expect(overlaps({ prefixes: ['a*'] }, { keys: ['ab*'] })).toBe(false); // a literal '*' in a prefix
    expect(overlaps({ prefixes: ['a:'] }, { keys: ['a:*'] })).toBe(true);
    expect(overlaps({ keys: ['a*'] }, { dbs: [0] })).toBe(true); // every name
  });

  it('an exclusion proves disjointness only when it removes the whole other pattern', () => {
    expect(overlaps({ keys: ['a*'], excludes: ['ab*'] }, { keys: ['ab*'] })).toBe(false);
    expect(overlaps({ keys: ['a*'], excludes: ['ab*'] }, { keys: ['abc:*'] })).toBe(false);
    expect(overlaps({ keys: ['a*'], excludes: ['abc*'] }, { keys: ['ab*'] })).toBe(true);
    expect(overlaps({ keys: ['a*'], excludes: ['ab?'] }, { keys: ['ab*'] })).toBe(true);
    expect(overlaps({ keys: ['a*'], excludes: ['a:1'] }, { keys: ['a:1'] })).toBe(false);
    expect(overlaps({ excludes: ['tmp:*'] }, { keys: ['tmp:*'] })).toBe(false);
    expect(overlaps({ excludes: ['tmp:*'] }, { keys: ['t*'] })).toBe(true);
  });

  it('by db: what matters is the source db, not where it lands', () => {
    expect(overlaps({ dbs: [0] }, { dbs: [1] })).toBe(false);
    expect(overlaps({ dbs: [0, 1] }, { dbs: [1, 2] })).toBe(true);
    expect(overlaps({ dbs: [3], dbMap: new Map([[3, 0]]) }, { dbs: [0] })).toBe(false);
    expect(overlaps({ dbs: [3], dbMap: new Map([[3, 0]]) }, { dbs: [3], dbMap: new Map([[3, 1]]) })).toBe(true);
    expect(overlaps({ dbs: [0], keys: ['a*'] }, { dbs: [1], keys: ['a*'] })).toBe(false);
  });

  it('by type', () => {
    expect(overlaps({ types: ['hash'] }, { types: ['string'] })).toBe(false);
    expect(overlaps({ types: ['hash', 'zset'] }, { types: ['zset'] })).toBe(true);
    expect(overlaps({ types: ['hash'] }, { keys: ['a*'] })).toBe(true);
    expect(overlaps({ keys: ['a*'], types: ['hash'] }, { keys: ['ab*'], types: ['list'] })).toBe(false);
  });

  it('renames and excluded commands do not change which source keys are copied', () => {
    expect(overlaps({ keys: ['a*'], renamePrefix: ['a', 'z'] }, { keys: ['ab*'] })).toBe(true);
    expect(overlaps({ keys: ['a*'], excludeCommands: ['flushall'] }, { keys: ['b*'] })).toBe(false);
  });

  it('names the patterns that meet', () => {
    expect(selectionOverlap(sel({ keys: ['a*'] }), sel({ keys: ['ab*'] }))).toBe('the key patterns "a*" and "ab*" may match the same keys');
  });
});
