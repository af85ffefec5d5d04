// ONNX graph pieces (build time only: onnx-proto is a dev dependency). Takes names, shapes and values;
// gives onnx-proto tensors, value infos, nodes and the encoded model bytes (IR 8, opset 13). Shared by
// the demo build (models/demo/build.ts) and the test models (test/helpers/onnx.ts).

import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;

export type ElemType = 'float32' | 'float64' | 'int64';
export type Dim = number | string;
/** An attribute value: an integer, a float (written as { f }), a list of integers, or a tensor. */
export type AttrValue = number | { f: number } | number[] | string | onnxProto.onnx.ITensorProto;

const DT = onnx.TensorProto.DataType;
const elem = (t: ElemType): number => (t === 'int64' ? DT.INT64 : t === 'float64' ? DT.DOUBLE : DT.FLOAT);

/** A tensor with its values as little-endian raw data (float32, float64, or int64 from integral numbers). */
export function tensor(name: string, dims: number[], values: readonly number[], type: ElemType = 'float32'): onnxProto.onnx.ITensorProto {
  const size = type === 'float32' ? 4 : 8;
  const bytes = new Uint8Array(values.length * size);
  const view = new DataView(bytes.buffer);
  const write = { int64: (i: number, v: number) => view.setBigInt64(i * 8, BigInt(v), true), float64: (i: number, v: number) => view.setFloat64(i * 8, v, true), float32: (i: number, v: number) => view.setFloat32(i * 4, v, true) }[type];
  values.forEach((v, i) => write(i, v));
  return onnx.TensorProto.create({ name, dims, dataType: elem(type), rawData: bytes });
}

/** A graph input or output: a string dimension is symbolic (dimParam), a number is fixed. */
export function io(name: string, dims: readonly Dim[], type: ElemType = 'float32'): onnxProto.onnx.IValueInfoProto {
  return onnx.ValueInfoProto.create({
    name,
    type: { tensorType: { elemType: elem(type), shape: { dim: dims.map((d) => (typeof d === 'string' ? { dimParam: d } : { dimValue: d })) } } },
  });
}

function attribute(name: string, v: AttrValue): onnxProto.onnx.IAttributeProto {
  const A = onnx.AttributeProto.AttributeType;
  if (typeof v === 'number') return { name, type: A.INT, i: v };
  if (typeof v === 'string') return { name, type: A.STRING, s: new TextEncoder().encode(v) };
  if (Array.isArray(v)) return { name, type: A.INTS, ints: v };
  if ('f' in v && typeof v.f === 'number') return { name, type: A.FLOAT, f: v.f };
  return { name, type: A.TENSOR, t: v as onnxProto.onnx.ITensorProto };
}

/** A node named after its (first) output. Attributes as a list of protos or as { name: value }. */
export function node(
  opType: string,
  input: string[],
  output: string | string[],
  attrs: onnxProto.onnx.IAttributeProto[] | Record<string, AttrValue> = [],
): onnxProto.onnx.INodeProto {
  const outputs = typeof output === 'string' ? [output] : output;
  const attribute_ = Array.isArray(attrs) ? attrs : Object.entries(attrs).map(([k, v]) => attribute(k, v));
  return onnx.NodeProto.create({ name: outputs[0], opType, input, output: outputs, attribute: attribute_ });
}

/** Verifies and encodes a model: IR 8, opset 13 (what onnxruntime-node 1.30 and Debian's onnx checker accept). */
export function encodeModel(graph: onnxProto.onnx.IGraphProto, producer: { name: string; version: string }): Uint8Array {
  const model = onnx.ModelProto.create({
    irVersion: 8,
    opsetImport: [{ domain: '', version: 13 }],
    producerName: producer.name,
    producerVersion: producer.version,
    graph,
  });
  const problem = onnx.ModelProto.verify(model);
  if (problem) throw new Error(`invalid ONNX model: ${problem}`);
  return onnx.ModelProto.encode(model).finish();
}

export function graphProto(g: onnxProto.onnx.IGraphProto): onnxProto.onnx.IGraphProto {
  return onnx.GraphProto.create(g);
}
