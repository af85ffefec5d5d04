// Fault suite, the hand-picked hostile payloads (kept in the repo, run on every fuzz pass): control
// characters and noncharacters in the asset id that goes into the result topic, topic wildcards,
// numbers that overflow, deep nesting, __proto__, a BOM, bytes that are not UTF-8, wrong types.

/** A bearing reading as raw JSON text; `slots` replaces a field's raw JSON (undefined drops it). Asset from the `asset` field. */
export function reading(seq: number, slots: Record<string, string | undefined>): string {
  const v: Record<string, string | undefined> = {
    asset: '"fz-1"', rms_g: '0.4', peak_g: '1.4', kurtosis: '3', crest_factor: '3.5', temperature_c: '45', speed_rpm: '1500', ...slots,
  };
  const field = (k: string) => (v[k] === undefined ? [] : [`"${k}":${v[k]}`]);
  const vib = ['rms_g', 'peak_g', 'kurtosis', 'crest_factor'].flatMap(field).join(',');
  return `{${[`"seq":${seq}`, ...field('asset'), `"vibration":{${vib}}`, ...field('temperature_c'), ...field('speed_rpm')].join(',')}}`;
}

const asset = (raw: string) => Buffer.from(reading(0, { asset: raw }));
const text = (s: string) => Buffer.from(s);
const good = reading(0, {});

export const NASTY: { name: string; payload: Buffer }[] = [
  // The asset id goes into the result topic: what mosquitto refuses there can poison the session.
  { name: 'asset U+0001', payload: asset('"a\\u0001b"') },
  { name: 'asset TAB', payload: asset('"a\\tb"') },
  { name: 'asset newline', payload: asset('"a\\nb"') },
  { name: 'asset U+007F', payload: asset('"a\\u007fb"') },
  { name: 'asset U+0085', payload: asset('"a\\u0085b"') },
  { name: 'asset U+FFFF', payload: asset('"a\\uffffb"') },
  { name: 'asset U+FFFE', payload: asset('"a\\ufffeb"') },
  { name: 'asset lone high surrogate', payload: asset('"a\\ud800b"') },
  { name: 'asset lone low surrogate', payload: asset('"a\\udc00b"') },
  { name: 'asset NUL', payload: asset('"a\\u0000b"') },
  { name: 'asset +', payload: asset('"a+b"') },
  { name: 'asset #', payload: asset('"#"') },
  { name: 'asset /', payload: asset('"a/b"') },
  { name: 'asset //', payload: asset('"//"') },
  { name: 'asset empty', payload: asset('""') },
  { name: 'asset 129 characters', payload: asset(`"${'x'.repeat(129)}"`) },
  { name: 'asset 128 four-byte characters', payload: asset(`"${'\u{1F600}'.repeat(128)}"`) },
  { name: 'asset $SYS', payload: asset('"$SYS"') },
  { name: 'asset RTL override', payload: asset('"a\\u202eb"') },
  { name: 'asset BOM', payload: asset('"\\ufeff"') },
  { name: 'asset 1e999', payload: asset('1e999') },
  { name: 'asset huge integer', payload: asset('123456789012345678901234567890') },
  { name: 'asset object', payload: asset('{"toString":"x"}') },
  { name: 'asset missing', payload: Buffer.from(reading(0, { asset: undefined })) },
  // Numbers.
  { name: 'feature 1e999', payload: Buffer.from(reading(0, { speed_rpm: '1e999' })) },
  { name: 'feature -1e999', payload: Buffer.from(reading(0, { temperature_c: '-1e999' })) },
  { name: 'feature 1e308 (overflows float32)', payload: Buffer.from(reading(0, { rms_g: '1e308' })) },
  { name: 'feature 1e-400 (underflows to 0)', payload: Buffer.from(reading(0, { rms_g: '1e-400' })) },
  { name: 'feature -0', payload: Buffer.from(reading(0, { rms_g: '-0' })) },
  { name: 'feature 400 digits', payload: Buffer.from(reading(0, { speed_rpm: '9'.repeat(400) })) },
  { name: 'feature NaN token', payload: Buffer.from(reading(0, { kurtosis: 'NaN' })) },
  { name: 'feature hex', payload: Buffer.from(reading(0, { kurtosis: '0x10' })) },
  // Types.
  { name: 'feature string', payload: Buffer.from(reading(0, { peak_g: '"1.4"' })) },
  { name: 'feature null', payload: Buffer.from(reading(0, { peak_g: 'null' })) },
  { name: 'feature array', payload: Buffer.from(reading(0, { peak_g: '[1.4]' })) },
  { name: 'feature object', payload: Buffer.from(reading(0, { peak_g: '{"valueOf":1.4}' })) },
  { name: 'feature bool', payload: Buffer.from(reading(0, { peak_g: 'true' })) },
  // Structure.
  { name: 'empty', payload: Buffer.alloc(0) },
  { name: 'whitespace', payload: text(' \n\t ') },
  { name: 'JSON null', payload: text('null') },
  { name: 'JSON array', payload: text('[1,2,3]') },
  { name: 'JSON string', payload: text('"reading"') },
  { name: 'JSON number', payload: text('42') },
  { name: 'deep nesting 100000 arrays', payload: text('['.repeat(100000) + ']'.repeat(100000)) },
  { name: 'deep nesting 20000 objects in a feature', payload: Buffer.from(reading(0, { rms_g: '{"a":'.repeat(20000) + '1' + '}'.repeat(20000) })) },
  { name: '__proto__ holding the features', payload: text(`{"__proto__":${good},"asset":"fz-1"}`) },
  { name: '__proto__ as vibration', payload: text('{"asset":"fz-1","__proto__":{"vibration":{"rms_g":1}},"temperature_c":45,"speed_rpm":1500}') },
  { name: 'constructor.prototype', payload: text('{"asset":"fz-1","constructor":{"prototype":{"rms_g":1}},"vibration":{}}') },
  { name: 'duplicate key, last a string', payload: text(good.replace('"speed_rpm":1500', '"speed_rpm":1500,"speed_rpm":"x"')) },
  { name: 'UTF-8 BOM before the JSON', payload: Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(good)]) },
  { name: 'UTF-16LE', payload: Buffer.from(good, 'utf16le') },
  { name: 'bytes FF FE', payload: Buffer.from([0xff, 0xfe, 0x7b, 0x7d]) },
  { name: 'overlong "/" (C0 AF)', payload: Buffer.concat([Buffer.from('{"asset":"'), Buffer.from([0xc0, 0xaf]), Buffer.from('"}')]) },
  { name: 'raw surrogate bytes (CESU-8)', payload: Buffer.concat([Buffer.from('{"asset":"'), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('"}')]) },
  { name: 'raw NUL byte', payload: Buffer.concat([Buffer.from(good.slice(0, 10)), Buffer.from([0]), Buffer.from(good.slice(10))]) },
  { name: 'raw control character in a string', payload: text(good.replace('fz-1', 'fz\u0001-1')) },
  { name: 'trailing garbage', payload: text(`${good}}}`) },
  { name: 'two readings', payload: text(`${good}${good}`) },
  { name: 'truncated', payload: text(good.slice(0, good.length - 3)) },
  { name: 'comment', payload: text(`/* hi */${good}`) },
  { name: 'single quotes', payload: text(good.replace(/"/g, "'")) },
  { name: 'over 64 KiB', payload: text(good.replace('{', `{"pad":"${'x'.repeat(70000)}",`)) },
];
