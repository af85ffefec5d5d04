// Fixed-batch models: takes packed feature rows and the batch a model is fixed at (or null); gives the
// chunks to feed it. A model exported without dynamic axes takes exactly its batch, so rows go in
// chunks of that size, the last one padded with zero rows whose outputs are dropped (`real` says how
// many rows of a chunk are real). With a symbolic batch everything is one chunk.

export interface Chunk {
  data: Float32Array;
  /** Rows the chunk feeds the model (the fixed batch, or all rows). */
  batch: number;
  /** Rows of the chunk that are real; the rest are padding. */
  real: number;
}

export function* chunks(data: Float32Array, rows: number, cols: number, fixedBatch: number | null): Generator<Chunk> {
  if (fixedBatch === null) {
    yield { data, batch: rows, real: rows };
    return;
  }
  for (let start = 0; start < rows; start += fixedBatch) {
    const real = Math.min(fixedBatch, rows - start);
    const chunk = new Float32Array(fixedBatch * cols); // zero-padded past `real`
    chunk.set(data.subarray(start * cols, (start + real) * cols));
    yield { data: chunk, batch: fixedBatch, real };
  }
}
