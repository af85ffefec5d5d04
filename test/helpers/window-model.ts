// A windowed test model: takes a window length; gives an ONNX graph over [batch, 3, length] (three
// vibration axes) -> RMS per axis -> a linear layer -> 2-class softmax, and its version folder. The
// class is predictable: "high" exactly when the mean of the three axes' RMS is above 1 g.

import type { Teardown } from './parts.js';
import { writeModelVersion, type GraphSpec, type ModelVersion } from './onnx.js';

export const AXES = ['x', 'y', 'z'] as const;
export const RMS_THRESHOLD_G = 1;
const K = 4;

/** [B, 3, length] -> x² -> mean over samples -> sqrt -> z = rms · W + b -> softmax: z_high − z_low = 2K(mean rms − 1). */
export function windowGraph(length: number, inputName = 'acc'): GraphSpec {
  return {
    name: 'vibration_window',
    inputs: [{ name: inputName, dims: ['B', AXES.length, length] }],
    outputs: [{ name: 'probabilities', dims: ['B', 2] }],
    initializers: [
      { name: 'W', dims: [2, 3], values: [-K / 3, -K / 3, -K / 3, K / 3, K / 3, K / 3] },
      { name: 'b', dims: [2], values: [K * RMS_THRESHOLD_G, -K * RMS_THRESHOLD_G] },
    ],
    nodes: [
      { op: 'Mul', in: [inputName, inputName], out: 'squared' },
      { op: 'ReduceMean', in: ['squared'], out: 'mean_square', attrs: { axes: [2], keepdims: 0 } },
      { op: 'Sqrt', in: ['mean_square'], out: 'rms' },
      { op: 'Gemm', in: ['rms', 'W', 'b'], out: 'logits', attrs: { transB: 1 } },
      { op: 'Softmax', in: ['logits'], out: 'probabilities', attrs: { axis: 1 } },
    ],
  };
}

/** `length` samples of a sine of amplitude `amp` (RMS amp/√2), channels first, one channel per axis. */
export function sineWindow(length: number, amp: number): number[] {
  return AXES.flatMap((_, c) => Array.from({ length }, (_, i) => Math.fround(amp * Math.sin((2 * Math.PI * i) / 8 + c))));
}

export function writeWindowModel(t: Teardown, length: number, edit?: (m: Record<string, unknown>) => void): Promise<ModelVersion> {
  return writeModelVersion(t, {
    name: 'vibration-window',
    graph: windowGraph(length),
    features: AXES.map((a) => ({ name: `acc_${a}`, unit: 'g', min: -16, max: 16 })),
    output: { kind: 'classification', tensor: 'probabilities', labels: ['low', 'high'] },
    window: { length },
    // RMS 0.14, 2.1 and 0.99 g: low, high, and low by a hair.
    golden: [sineWindow(length, 0.2), sineWindow(length, 3), sineWindow(length, 1.4)],
    ...(edit ? { edit } : {}),
  });
}
