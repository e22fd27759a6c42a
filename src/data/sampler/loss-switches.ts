import type { DatasetKind } from '../types.js';

/**
 * Which losses a batch trains (APE trains each dataset type on what its labels can teach):
 * detection and segmentation sets train everything; grounding sets train the decoder's class
 * loss, plus boxes and masks where they have masks; class-agnostic sets train boxes, masks and the
 * encoder's objectness but no decoder class loss; federated sets use the federated class loss.
 */
export interface LossSwitches {
  /** Decoder prompt-classification (focal) loss. */
  decoderClass: boolean;
  /** L1 + GIoU on matched boxes (decoder and, with `encoder`, proposals). */
  boxes: boolean;
  /** Mask BCE + dice (only where the samples have masks). */
  masks: boolean;
  /** Class-agnostic objectness and boxes of the encoder proposals. */
  encoder: boolean;
  /** Class loss restricted to each image's federated prompt subset. */
  federated: boolean;
}

export function defaultLossSwitches(kind: DatasetKind, hasMasks: boolean, federated = false): LossSwitches {
  switch (kind) {
    case 'detection':
    case 'semantic':
      return { decoderClass: true, boxes: true, masks: hasMasks, encoder: true, federated };
    case 'grounding':
      return { decoderClass: true, boxes: hasMasks, masks: hasMasks, encoder: false, federated: false };
    case 'class-agnostic':
      return { decoderClass: false, boxes: true, masks: hasMasks, encoder: true, federated: false };
  }
}
