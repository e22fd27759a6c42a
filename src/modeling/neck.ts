import type { Rng } from '../util/random.js';
import { Module, init } from '../nn/module.js';
import { ConvNormAct } from '../nn/conv-norm.js';

/** The ChannelMapper neck: a 1x1 conv + GroupNorm per level (`neck.convs.N.conv/norm`). */
export class ChannelMapper extends Module {
  readonly convs: ConvNormAct[];
  constructor(inChannels: number, outChannels: number, levels: number, groups: number, rng: Rng) {
    super();
    this.convs = this.childList(
      'convs',
      Array.from(
        { length: levels },
        () =>
          new ConvNormAct(inChannels, outChannels, 1, rng, { bias: true, groups, weightInit: init.xavierUniform() }),
      ),
    );
  }
}
