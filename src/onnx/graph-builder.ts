import type { OnnxAttribute, OnnxElementType, OnnxNode, OnnxTensor } from './onnx-model.js';

/** Collects ONNX nodes and constant initializers under fresh names. */
export class GraphBuilder {
  readonly nodes: OnnxNode[] = [];
  readonly constants: OnnxTensor[] = [];
  private counter = 0;

  constructor(private readonly prefix: string) {}

  fresh(hint: string): string {
    return `${this.prefix}${hint}_${this.counter++}`;
  }

  /** One node with one output (a fresh name unless given). */
  op(op: string, inputs: string[], attributes?: Record<string, OnnxAttribute>, output?: string): string {
    const out = output ?? this.fresh(op.toLowerCase());
    this.nodes.push({ op, inputs, outputs: [out], ...(attributes ? { attributes } : {}) });
    return out;
  }

  /** One node with several outputs. */
  multi(op: string, inputs: string[], outputs: string[], attributes?: Record<string, OnnxAttribute>): void {
    this.nodes.push({ op, inputs, outputs, ...(attributes ? { attributes } : {}) });
  }

  int64s(values: readonly number[]): string {
    return this.constant('int64', [values.length], BigInt64Array.from(values.map((v) => BigInt(v))));
  }

  scalar(type: OnnxElementType, value: number): string {
    const data =
      type === 'float'
        ? Float32Array.of(value)
        : type === 'int32'
          ? Int32Array.of(value)
          : type === 'int64'
            ? BigInt64Array.of(BigInt(value))
            : Uint8Array.of(value);
    return this.constant(type, [], data);
  }

  constant(type: OnnxElementType, dims: number[], data: OnnxTensor['data']): string {
    const name = this.fresh('c');
    this.constants.push({ name, type, dims, data });
    return name;
  }

  reshape(x: string, shape: readonly number[], output?: string): string {
    return this.op('Reshape', [x, this.int64s(shape)], undefined, output);
  }

  transpose(x: string, perm: number[], output?: string): string {
    return this.op('Transpose', [x], { perm }, output);
  }
}
