// What the agent can serve, as exporters write models: takes an ONNX session's real inputs and outputs;
// gives what stands in the way, each with how to export the model instead (PyTorch, scikit-learn).
// The agent feeds one float32 tensor [batch, features] (or a window [batch, channels, samples]) and reads
// float32 outputs [batch, k]; the batch
// dimension may be symbolic (dynamic_axes) or fixed (torch.onnx.export's default), then it is fed in chunks.

export interface TensorInfo { name: string; type: string; shape: (number | string)[] }

export interface Servable {
  input: TensorInfo;
  /** The batch size the model is fixed at, or null when its batch dimension is symbolic. */
  fixedBatch: number | null;
  /** One row's dimensions after the batch: [features], or [channels, samples] for a 3-d (windowed) input. */
  row: number[];
  /** Outputs the agent can read (float32, [batch, k]), in the model's order. */
  readable: TensorInfo[];
}

const show = (t: TensorInfo) => `"${t.name}" ${t.type} [${t.shape.join(',')}]`;

/** Gives the servable shape of a model, or the problems (with export advice) that stop it. */
export function servable(inputs: readonly TensorInfo[], outputs: readonly TensorInfo[]): Servable | { problems: string[] } {
  const problems: string[] = [];
  if (inputs.length !== 1) {
    problems.push(
      `the model has ${inputs.length} inputs (${inputs.map(show).join(', ')}); the agent feeds one float32 tensor [batch, features]: ` +
        'export with the features concatenated into one input (PyTorch: one tensor argument; scikit-learn: one FloatTensorType input)',
    );
  }
  const input = inputs[0];
  if (input) {
    if (input.type !== 'float32') {
      problems.push(`input ${show(input)} is ${input.type}; export with float32 inputs (PyTorch: model.float() and a float32 example; scikit-learn: FloatTensorType, not DoubleTensorType)`);
    }
    const rest = input.shape.slice(1);
    if ((input.shape.length !== 2 && input.shape.length !== 3) || !rest.every((d) => typeof d === 'number' && d > 0)) {
      problems.push(`input ${show(input)} is not [batch, features] or [batch, channels, samples] (a window) with fixed sizes after the batch`);
    }
  }
  for (const o of outputs) {
    if (o.type === 'non-tensor') {
      problems.push(
        `output "${o.name}" is not a tensor (scikit-learn classifiers export their probabilities as a sequence of maps, "ZipMap", by default); ` +
          "export with options={id(model): {'zipmap': False}} in skl2onnx's convert_sklearn/to_onnx",
      );
    }
  }
  const readable = outputs.filter((o) => o.type === 'float32' && o.shape.length === 2);
  if (!readable.length && !problems.length) {
    problems.push(`no output is a float32 tensor [batch, k] (outputs: ${outputs.map(show).join(', ')}); export the scores or probabilities as float32`);
  }
  if (problems.length || !input) return { problems };
  const b = input.shape[0];
  return { input, fixedBatch: typeof b === 'number' && b > 0 ? b : null, row: input.shape.slice(1) as number[], readable };
}
