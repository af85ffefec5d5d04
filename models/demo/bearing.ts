// Demo data: takes a bearing degradation level (0 new … 1 failing), a seeded PRNG and optional speed/ambient,
// and gives one physically plausible condition reading of an electric motor's rolling bearing
// (vibration RMS/peak/kurtosis/crest, housing temperature, shaft speed), for training and the live simulator.

export const FEATURES = [
  { name: 'rms_g', unit: 'g', description: 'Vibration RMS acceleration at the bearing housing', min: 0, max: 50 },
  { name: 'peak_g', unit: 'g', description: 'Vibration peak acceleration over the same window (crest_factor × rms_g)', min: 0, max: 200 },
  { name: 'kurtosis', unit: '1', description: 'Kurtosis of the vibration signal (3 for Gaussian; impacts raise it)', min: 1, max: 100 },
  { name: 'crest_factor', unit: '1', description: 'Peak over RMS of the vibration signal', min: 1, max: 50 },
  { name: 'temperature_c', unit: '°C', description: 'Bearing housing temperature', min: -40, max: 200 },
  { name: 'speed_rpm', unit: 'rpm', description: 'Shaft speed', min: 0, max: 6000 },
] as const;

export type FeatureName = (typeof FEATURES)[number]['name'];

export const LABELS = ['healthy', 'wear', 'fault'] as const;
export type Label = (typeof LABELS)[number];

/** Health below this is 'healthy', below WEAR_MAX 'wear', above 'fault'. */
export const HEALTHY_MAX = 0.3;
export const WEAR_MAX = 0.7;

/** Operating envelope the generator draws from when no speed / ambient is given (the training range). */
export const SPEED_RANGE_RPM = [900, 3000] as const;
export const AMBIENT_RANGE_C = [10, 40] as const;

/** Mulberry32: a small, fast, seeded PRNG giving floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Standard normal deviate (Box–Muller), times sd plus mean. */
export function gaussian(rand: () => number, mean = 0, sd = 1): number {
  const u = 1 - rand(); // (0, 1]: log is finite
  const v = rand();
  return mean + sd * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

const clamp = (x: number, lo: number, hi: number): number => Math.min(hi, Math.max(lo, x));
const smoothstep = (e0: number, e1: number, x: number): number => {
  const t = clamp((x - e0) / (e1 - e0), 0, 1);
  return t * t * (3 - 2 * t);
};

/** Label index for a degradation level. */
export function labelFor(health: number): 0 | 1 | 2 {
  return health < HEALTHY_MAX ? 0 : health < WEAR_MAX ? 1 : 2;
}

/**
 * One reading for a bearing at degradation `health` in [0, 1].
 * - healthy: near-Gaussian vibration (kurtosis ≈ 3, crest ≈ 3–4), RMS ≈ 0.2–0.8 g at 1500 rpm, scaling with speed;
 *   housing ≈ ambient + 15–25 °C.
 * - incipient wear (≈ 0.5): periodic defect impacts: kurtosis 4–8, crest 5–7, RMS only slightly up.
 * - developed fault (→ 1): damage spreads, broadband vibration: RMS 1.5–5 g, kurtosis back to ≈ 3–5,
 *   housing ≈ ambient + 40–70 °C.
 */
export function sampleReading(
  health: number,
  rand: () => number,
  opts: { speedRpm?: number; ambientC?: number } = {},
): Record<FeatureName, number> {
  const h = clamp(health, 0, 1);
  const speed = opts.speedRpm ?? SPEED_RANGE_RPM[0] + (SPEED_RANGE_RPM[1] - SPEED_RANGE_RPM[0]) * rand();
  const ambient = opts.ambientC ?? clamp(gaussian(rand, 25, 6), AMBIENT_RANGE_C[0], AMBIENT_RANGE_C[1]);
  const s = Math.max(speed, 0) / 1500;

  // Impulsiveness: a bump around incipient wear, plus a smaller plateau once the fault is developed.
  const impulsive = 3.6 * Math.exp(-(((h - 0.5) / 0.17) ** 2)) + 1.1 * smoothstep(0.6, 1, h);
  const kurtosis = clamp(3 + impulsive * Math.exp(gaussian(rand, 0, 0.2)) + gaussian(rand, 0, 0.2), 1.5, 60);
  const crest = clamp(3.5 + 0.7 * (kurtosis - 3) + gaussian(rand, 0, 0.25), 1.5, 40);

  // Energy: machine-to-machine spread (log-normal around 0.4 g at 1500 rpm), slight rise with wear, steep with fault.
  const base = 0.4 * Math.exp(gaussian(rand, 0, 0.25)) * s ** 1.2;
  const growth = 1 + 0.35 * smoothstep(0.25, 0.65, h) + 7.5 * smoothstep(0.6, 1, h) ** 1.5;
  const rms = clamp(base * growth * Math.exp(gaussian(rand, 0, 0.1)), 0.005, 45);

  // Heat: friction rise grows with speed; a damaged bearing runs much hotter.
  const rise = 20 + 4 * (s - 1) + 45 * smoothstep(0.55, 1, h) ** 1.3 + gaussian(rand, 0, 2.5);
  const temperature = clamp(ambient + rise, -40, 200);

  return {
    rms_g: rms,
    peak_g: crest * rms,
    kurtosis,
    crest_factor: crest,
    temperature_c: temperature,
    speed_rpm: clamp(speed + gaussian(rand, 0, 2), 0, 6000),
  };
}
