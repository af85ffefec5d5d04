// Training baseline: takes the training rows' values of one feature (or the labels a model predicted
// on them); gives what the manifest keeps for drift checks: mean, std, min, max, quantiles and a
// 10-bin histogram per feature, and the share of each predicted label. Numbers to 6 significant digits.

export const sig = (x: number): number => Number(x.toPrecision(6));

const at = (a: readonly number[], i: number): number => a[i] ?? Number.NaN;

export function meanOf(v: readonly number[]): number {
  return v.reduce((a, b) => a + b, 0) / v.length;
}

export function stdOf(v: readonly number[]): number {
  const m = meanOf(v);
  return Math.sqrt(v.reduce((a, b) => a + (b - m) ** 2, 0) / v.length);
}

export function featureBaseline(values: readonly number[]) {
  const v = [...values].sort((a, b) => a - b);
  const q = (p: number): number => {
    const pos = p * (v.length - 1);
    const lo = Math.floor(pos);
    return at(v, lo) + (at(v, Math.min(lo + 1, v.length - 1)) - at(v, lo)) * (pos - lo);
  };
  const min = at(v, 0);
  const max = at(v, v.length - 1);
  const edges = Array.from({ length: 11 }, (_, i) => sig(min + ((max - min) * i) / 10));
  const counts = new Array<number>(10).fill(0);
  for (const x of v) {
    let b = 0;
    while (b < 9 && x >= at(edges, b + 1)) b++;
    counts[b] = at(counts, b) + 1;
  }
  const quantiles = Object.fromEntries([1, 5, 25, 50, 75, 95, 99].map((p) => [`p${String(p).padStart(2, '0')}`, sig(q(p / 100))]));
  return { mean: sig(meanOf(v)), std: sig(stdOf(v)), min: sig(min), max: sig(max), quantiles, histogram: { edges, counts } };
}

/** The share of each label among the labels a model predicted (argmax) on the training rows. */
export function predictedShares(labels: readonly string[], predicted: readonly number[]): Record<string, number> {
  return Object.fromEntries(labels.map((l, c) => [l, sig(predicted.filter((p) => p === c).length / predicted.length)]));
}
