/** Conv2DInfo from a TF.js conv kernel's attributes, NHWC only (the only layout wasm convolves). */
import { tf } from '../tf.js';

type Shape4 = [number, number, number, number];

export interface ConvAttrs {
  strides: number | [number, number];
  pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
  dataFormat?: 'NHWC' | 'NCHW';
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  dilations?: number | [number, number];
}

export function convInfoOf(
  kernel: string,
  xShape: number[],
  filterShape: number[],
  attrs: ConvAttrs,
  depthwise = false,
): tf.backend_util.Conv2DInfo {
  if (attrs.dataFormat !== undefined && attrs.dataFormat !== 'NHWC') {
    throw new Error(`${kernel} (wasm patch): dataFormat '${attrs.dataFormat}' is not supported, use 'NHWC'`);
  }
  if (xShape.length !== 4 || filterShape.length !== 4) {
    throw new Error(
      `${kernel} (wasm patch): rank-4 input and filter expected, got ${JSON.stringify(xShape)} and ${JSON.stringify(filterShape)}`,
    );
  }
  return tf.backend_util.computeConv2DInfo(
    xShape as Shape4,
    filterShape as Shape4,
    attrs.strides,
    attrs.dilations ?? 1,
    attrs.pad,
    attrs.dimRoundingMode,
    depthwise,
    'channelsLast',
  );
}
