// Fault suite, the fuzz corpus: takes a seeded random source; gives hostile payloads, each a good
// bearing reading bent one way (the asset field, a feature, the structure, the bytes), mixed with the
// hand-picked cases of nasty.ts. The same seed gives the same corpus.

import { NASTY, reading } from './nasty.js';

// Characters an asset id (and so a result topic) must survive or be refused for.
const ASSET_CHARS = [
  'a', 'Z', '7', '-', '_', '.', ' ', '+', '#', '/', '$', '\\', '"', '\u0000', '\u0001', '\t', '\n', '\r', '\u001f', '\u007f', '\u0080',
  '\u0085', '\u00a0', '\u2028', '\u2029', '\u202e', '\ufeff', '\ufffe', '\uffff', '\ud800', '\udfff', '\ud83d\ude00', 'é', '中',
];

// Raw JSON tokens (and some that are not JSON) for a feature's value.
const VALUES = [
  '1e999', '-1e999', '1e308', '-1e308', '5e-324', '1e-400', '-0', '0', '1', '-1', '1e6', '123456789012345678901234567890',
  'NaN', 'Infinity', '-Infinity', '0x10', '01', '.5', '5.', '+1', '"1"', '""', '"NaN"', 'null', 'true', 'false', '[]', '[1]',
  '{}', '{"__proto__":1}', '"\\u0000"', '9'.repeat(400),
];

const FEATURE_SLOTS = ['rms_g', 'peak_g', 'kurtosis', 'crest_factor', 'temperature_c', 'speed_rpm'] as const;

const pick = <T>(random: () => number, xs: readonly T[]): T => xs[Math.floor(random() * xs.length)] as T;

function randomAsset(random: () => number): string {
  const len = random() < 0.1 ? 120 + Math.floor(random() * 20) : Math.floor(random() * 12);
  let s = '';
  for (let i = 0; i < len; i++) s += random() < 0.6 ? pick(random, ['a', 'b', 'x', '1', '-']) : pick(random, ASSET_CHARS);
  return s;
}

/** One hostile payload, i-th of the corpus. */
export function hostile(random: () => number, i: number): Buffer {
  const r = random();
  if (r < 0.15) return NASTY[i % NASTY.length]?.payload as Buffer;
  if (r < 0.4) return Buffer.from(reading(i, { asset: JSON.stringify(randomAsset(random)) }));
  if (r < 0.6) return Buffer.from(reading(i, { [pick(random, FEATURE_SLOTS)]: pick(random, VALUES) }));
  const good = Buffer.from(reading(i, {}));
  if (r < 0.7) {
    // A few bytes flipped anywhere: broken JSON, broken UTF-8, or a reading that still parses.
    const b = Buffer.from(good);
    for (let k = 1 + Math.floor(random() * 4); k > 0; k--) b[Math.floor(random() * b.length)] = Math.floor(random() * 256);
    return b;
  }
  if (r < 0.78) return good.subarray(0, Math.floor(random() * good.length));
  if (r < 0.84) return Buffer.from(Array.from({ length: Math.floor(random() * 300) }, () => Math.floor(random() * 256)));
  if (r < 0.9) {
    const depth = 1 + Math.floor(random() * 20000);
    const slot = pick(random, FEATURE_SLOTS);
    return Buffer.from(reading(i, { [slot]: '['.repeat(depth) + '1' + ']'.repeat(depth) }));
  }
  if (r < 0.95) return Buffer.from(reading(i, { [pick(random, FEATURE_SLOTS)]: undefined }));
  // The asset as a number, null, object, or missing.
  return Buffer.from(reading(i, { asset: pick(random, ['42', '1e999', 'null', '{}', '[]', 'true', undefined]) }));
}
