// Payload mapping: dot paths into the JSON, array indices, the asset from a topic level or a
// payload field, and a reason for every way a payload can be unusable.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createDecoder, mappingOptionsSchema, mappingProblems } from '../../agent/ingest/features.js';
import { readManifest } from '../../models/manifest.js';
import { demoModelDir } from '../helpers/parts.js';

const manifest = readManifest(demoModelDir);
const values = { rms_g: 0.5, peak_g: 1.6, kurtosis: 3.1, crest_factor: 3.2, temperature_c: 44, speed_rpm: 1480 };
const buf = (v: unknown) => Buffer.from(JSON.stringify(v));

test('unmapped features are read from top-level fields of the same name, in manifest order', { timeout: 30000 }, () => {
  const decode = createDecoder(mappingOptionsSchema.parse({}), manifest, 65536);
  assert.deepEqual(decode('plant/press-9/bearing', buf(values)), { ok: true, asset: 'press-9', values: [0.5, 1.6, 3.1, 3.2, 44, 1480] });
});

test('dot paths reach into objects and arrays; the asset can come from a payload field', { timeout: 30000 }, () => {
  const mapping = mappingOptionsSchema.parse({
    asset: { field: 'meta.machine' },
    features: { rms_g: 'axes.0.rms', peak_g: 'axes.0.peak', kurtosis: 'axes.1.k', crest_factor: 'axes.1.crest', temperature_c: 'env.t' },
  });
  const decode = createDecoder(mapping, manifest, 65536);
  const payload = { meta: { machine: 'lathe-4' }, axes: [{ rms: 1, peak: 4 }, { k: 3, crest: 4 }], env: { t: 50 }, speed_rpm: 900 };
  assert.deepEqual(decode('any/topic', buf(payload)), { ok: true, asset: 'lathe-4', values: [1, 4, 3, 4, 50, 900] });
  assert.equal((decode('any/topic', buf({ ...payload, meta: { machine: 17 } })) as { asset: string }).asset, '17');
  const noAsset = decode('any/topic', buf({ ...payload, meta: {} }));
  assert.deepEqual([noAsset.ok, (noAsset as { code: string }).code], [false, 'REJECT_NO_ASSET']);
  const slash = decode('any/topic', buf({ ...payload, meta: { machine: 'a/b' } }));
  assert.deepEqual([(slash as { code: string }).code, (slash as { detail: string }).detail], ['REJECT_BAD_ASSET', 'asset id "a/b" holds / + or #, which would change the topic it goes into']);
});

test('every kind of bad payload has its own reason', { timeout: 30000 }, () => {
  const decode = createDecoder(mappingOptionsSchema.parse({ asset: { topicLevel: 3 } }), manifest, 200);
  const cases: [string, Buffer, string][] = [
    ['plant/a/b/m1', Buffer.alloc(201, 32), 'REJECT_PAYLOAD_TOO_LARGE'],
    ['plant/a/b/m1', Buffer.from([0xc3, 0x28]), 'REJECT_NOT_UTF8'],
    ['plant/a/b/m1', Buffer.from('{"a":'), 'REJECT_MALFORMED_JSON'],
    ['plant/a/b/m1', Buffer.from('42'), 'REJECT_NOT_OBJECT'],
    ['plant/a/b/m1', Buffer.from('null'), 'REJECT_NOT_OBJECT'],
    ['plant/a/b', buf(values), 'REJECT_NO_ASSET'],
    ['plant/a/b/m1', buf({ ...values, kurtosis: undefined }), 'REJECT_MISSING_FIELD'],
    ['plant/a/b/m1', buf({ ...values, kurtosis: true }), 'REJECT_WRONG_TYPE'],
    ['plant/a/b/m1', Buffer.from(JSON.stringify(values).replace('44', '-1e400')), 'REJECT_NOT_FINITE'],
    ['plant/a/b/m1', buf({ ...values, speed_rpm: 7000 }), 'REJECT_OUT_OF_RANGE'],
    ['plant/a/b/m1', buf({ ...values, rms_g: -0.1 }), 'REJECT_OUT_OF_RANGE'],
  ];
  for (const [topic, payload, code] of cases) {
    const d = decode(topic, payload);
    assert.equal(d.ok, false, code);
    assert.equal((d as { code: string }).code, code);
  }
  assert.equal(decode('plant/a/b/m1', buf(values)).ok, true);
});

test('a mapping naming a feature the model lacks is reported', { timeout: 30000 }, () => {
  const problems = mappingProblems(mappingOptionsSchema.parse({ features: { rms: 'x' } }), manifest);
  assert.equal(problems.length, 1);
  assert.match(problems[0]!, /mapping\.features\.rms/);
});
