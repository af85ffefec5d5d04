// Topic names: takes a string that is to stand in an MQTT topic (a whole topic, or an asset id or a
// model name/version that fills a placeholder); gives what a broker would object to, or null.
//
// A PUBLISH whose topic a broker rejects makes the broker drop the connection, and mqtt.js resends
// the unacknowledged QoS 1 publish on every reconnect: one bad result would cut the line off for good.
// So every string that goes into a topic is checked here first. The rules are MQTT 3.1.1/5 section 1.5.4
// (well-formed UTF-8, no U+0000) plus what mosquitto enforces beyond the MUSTs (utf8_mosq.c): no control
// characters U+0001–U+001F and U+007F–U+009F, no noncharacters (U+FDD0–U+FDEF, U+xFFFE, U+xFFFF).

/** The longest topic MQTT can carry: a two-byte length prefix. */
export const MAX_TOPIC_BYTES = 65535;

function hex(cp: number): string {
  return `U+${cp.toString(16).toUpperCase().padStart(4, '0')}`;
}

/** What is wrong with `s` as part of a topic name (characters only), or null. A plain loop: it runs per message. */
export function topicTextProblem(s: string): string | null {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) {
      const d = s.charCodeAt(i + 1);
      if (!(d >= 0xdc00 && d <= 0xdfff)) return `holds an unpaired surrogate ${hex(c)} (not valid UTF-8)`;
      const cp = ((c - 0xd800) << 10) + (d - 0xdc00) + 0x10000;
      if ((cp & 0xfffe) === 0xfffe) return `holds the noncharacter ${hex(cp)}`;
      i++;
    } else if (c >= 0xdc00 && c <= 0xdfff) {
      return `holds an unpaired surrogate ${hex(c)} (not valid UTF-8)`;
    } else if (c === 0) {
      return 'holds U+0000, which MQTT forbids in topics';
    } else if (c <= 0x1f || (c >= 0x7f && c <= 0x9f)) {
      return `holds the control character ${hex(c)}`;
    } else if ((c >= 0xfdd0 && c <= 0xfdef) || c === 0xfffe || c === 0xffff) {
      return `holds the noncharacter ${hex(c)}`;
    }
  }
  return null;
}

/** What is wrong with `topic` as the topic of a PUBLISH, or null. */
export function publishTopicProblem(topic: string): string | null {
  if (topic.length === 0) return 'is empty';
  if (/[+#]/.test(topic)) return 'holds a wildcard (+ or #), which a published topic cannot';
  if (topic.startsWith('$')) return 'starts with $, which brokers reserve for themselves';
  const text = topicTextProblem(topic);
  if (text) return text;
  const bytes = Buffer.byteLength(topic, 'utf8');
  if (bytes > MAX_TOPIC_BYTES) return `is ${bytes} bytes long; MQTT allows ${MAX_TOPIC_BYTES}`;
  return null;
}

/** What is wrong with `s` as one topic level filling a placeholder (no /, + or #), or null. */
export function topicLevelProblem(s: string, maxChars: number): string | null {
  if (s.length === 0) return 'is empty';
  if (s.length > maxChars) return `is ${s.length} characters long; the limit is ${maxChars}`;
  if (/[/+#]/.test(s)) return 'holds / + or #, which would change the topic it goes into';
  return topicTextProblem(s);
}

/**
 * Whether `topic` matches the subscription `filter` (MQTT 3.1.1/5 section 4.7): + stands for one whole
 * level, # (last) for any number of levels including none ("a/#" matches "a"), and wildcards at the
 * first level do not match topics that start with $.
 */
export function topicMatches(filter: string, topic: string): boolean {
  if (topic.startsWith('$') && (filter.startsWith('+') || filter.startsWith('#'))) return false;
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    const level = f[i] as string;
    if (level === '#') return true;
    if (i >= t.length) return false;
    if (level !== '+' && level !== t[i]) return false;
  }
  return f.length === t.length;
}

/**
 * The filter messages are matched against for a subscription: a shared subscription ($share/GROUP/filter,
 * MQTT 5 and most brokers for 3.1.1; $queue/filter on EMQX) delivers messages on the topics of its filter.
 */
export function deliveredFilter(subscription: string): string {
  const shared = /^\$share\/[^/]+\/(.+)$/.exec(subscription) ?? /^\$queue\/(.+)$/.exec(subscription);
  return shared ? (shared[1] as string) : subscription;
}

/** Topics remembered with their subscription; past this the cache starts afresh (topics repeat per asset and signal). */
const SUBSCRIPTION_CACHE = 10_000;

/**
 * The index of the subscription (in `filters`, as written in the config) a topic arrives by, or -1 for none;
 * cached per topic. Ingest looks it up once per message, for fairness and for /metrics' counts.
 */
export function createSubscriptionIndex(filters: readonly string[]): (topic: string) => number {
  const delivered = filters.map(deliveredFilter);
  const cache = new Map<string, number>();
  return (topic) => {
    let i = cache.get(topic);
    if (i === undefined) {
      i = delivered.findIndex((f) => topicMatches(f, topic));
      if (cache.size >= SUBSCRIPTION_CACHE) cache.clear();
      cache.set(topic, i);
    }
    return i;
  };
}
