/**
 * MQTT topic filters [MQTT-4.7]: levels separated by "/", "+" matches exactly one level, "#" (last level only)
 * matches any number of levels including none. Three questions the ACL asks of a pattern:
 * - matches(pattern, topic):    does the pattern match this concrete topic?
 * - covers(pattern, filter):    is every topic the filter can match also matched by the pattern?
 * - intersects(a, b):           is there at least one topic both can match?
 * Patterns and filters arrive split into levels. Topics starting with "$" are not matched by a pattern that
 * begins with a wildcard [MQTT-4.7.2-1].
 */

export type Levels = readonly string[];

export function matches(pattern: Levels, topic: Levels): boolean {
  if (topic[0]?.startsWith('$') && (pattern[0] === '+' || pattern[0] === '#')) return false;
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i]!;
    if (p === '#') return true;
    if (i >= topic.length) return false;
    if (p !== '+' && p !== topic[i]) return false;
  }
  return pattern.length === topic.length;
}

export function covers(pattern: Levels, filter: Levels): boolean {
  if (filter[0]?.startsWith('$') && (pattern[0] === '+' || pattern[0] === '#')) return false;
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i]!;
    if (p === '#') return true;
    if (i >= filter.length) return false;
    const f = filter[i]!;
    if (f === '#') return false; // the filter reaches further than this pattern's fixed length
    if (p === '+') continue;
    if (f === '+' || f !== p) return false;
  }
  return pattern.length === filter.length;
}

export function intersects(a: Levels, b: Levels): boolean {
  for (let i = 0; ; i++) {
    const x = a[i];
    const y = b[i];
    if (x === '#' || y === '#') return true;
    if (x === undefined || y === undefined) return x === y;
    if (x !== '+' && y !== '+' && x !== y) return false;
  }
}

/** Splits a topic or filter into levels. */
export function levels(topic: string): string[] {
  return topic.split('/');
}

/** A valid subscription filter [MQTT-4.7.1]: "#" only alone in the last level, "+" only alone in a level. */
export function isValidFilter(filter: string): boolean {
  if (filter === '') return false;
  const parts = levels(filter);
  return parts.every((level, i) => {
    if (level.includes('#')) return level === '#' && i === parts.length - 1;
    return !level.includes('+') || level === '+';
  });
}
