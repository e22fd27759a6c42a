import { APE_PRESETS, type ApeConfig, type ApePresetName } from '../modeling/config.js';

/**
 * The released APE models by name: where the weights are on the Hugging Face hub (the paths of
 * the "Checkpoints" table of APE's README, github.com/shenyunhang/APE), the APE config each was
 * trained with, and the preset of this project that runs it. Names whose model this project
 * cannot build yet carry `unsupported`: what differs from what the code has.
 */
export interface ReleasedModel {
  /** The name `--model`, `loadModel` and `ape pull` take. */
  name: string;
  /** The name in APE's README. */
  title: string;
  /** The preset that builds it; null when not supported yet. */
  preset: ApePresetName | null;
  /** The hub file: `{endpoint}/{repo}/resolve/{revision}/{path}`. */
  hub: { repo: string; revision: string; path: string };
  /** APE's training config (in github.com/shenyunhang/APE). */
  apeConfig: string;
  /** Backbone, text tower, fusion and input size, in words (the docs' table). */
  summary: string;
  /** Why the name cannot be used yet (what the config has that the code has not). */
  unsupported?: string;
}

export const APE_HUB_REPO = 'shenyunhang/APE';

const hub = (path: string) => ({ repo: APE_HUB_REPO, revision: 'main', path });

const EVA01_TEXT =
  'its text tower is EVA01-CLIP-g/14 (EVA01CLIP "EVA_CLIP_g_14_X", set in configs/COCO_InstanceSegmentation/ape_deta/ape_deta_vitl_eva02_lsj1024_cp_12ep.py, which its config builds on); this project has the EVA02-CLIP-E text tower of APE-Ti and APE-L_D only';

export const RELEASED_MODELS: readonly ReleasedModel[] = [
  {
    name: 'ape-ti',
    title: 'APE-Ti',
    preset: 'ape-ti',
    hub: hub(
      'configs/LVISCOCOCOCOSTUFF_O365_OID_VGR_SA1B_REFCOCO_GQA_PhraseCut_Flickr30k/ape_deta/ape_deta_vitt_eva02_vlf_lsj1024_cp_16x4_1080k_mdl_20240203_230000/model_final.pth',
    ),
    apeConfig:
      'configs/LVISCOCOCOCOSTUFF_O365_OID_VGR_SA1B_REFCOCO_GQA_PhraseCut_Flickr30k/ape_deta/ape_deta_vitt_eva02_vlf_lsj1024_cp_16x4_1080k_mdl.py',
    summary:
      'EVA-02 ViT-Ti backbone (192-d, 12 blocks), EVA02-CLIP-E text tower (float16), gated fusion (2048-d, 8 heads, zero token for vocabulary), ChannelMapper neck, input 1024',
  },
  {
    name: 'ape-l-d',
    title: 'APE-L_D',
    preset: 'ape-d',
    hub: hub(
      'configs/LVISCOCOCOCOSTUFF_O365_OID_VGR_SA1B_REFCOCO_GQA_PhraseCut_Flickr30k/ape_deta/ape_deta_vitl_eva02_clip_vlf_lsj1024_cp_16x4_1080k_mdl_20230829_162438/model_final.pth',
    ),
    apeConfig:
      'configs/LVISCOCOCOCOSTUFF_O365_OID_VGR_SA1B_REFCOCO_GQA_PhraseCut_Flickr30k/ape_deta/ape_deta_vitl_eva02_clip_vlf_lsj1024_cp_16x4_1080k_mdl.py',
    summary:
      'EVA-02 ViT-L backbone (1024-d, 24 blocks), EVA02-CLIP-E text tower, gated fusion (2048-d, 8 heads, zero token for vocabulary), ChannelMapper neck, input 1024',
  },
  {
    name: 'ape-l-c',
    title: 'APE-L_C',
    preset: null,
    hub: hub(
      'configs/LVISCOCOCOCOSTUFF_O365_OID_VGR_SA1B_REFCOCO/ape_deta/ape_deta_vitl_eva02_vlf_lsj_cp_1080k_20230702_210950/model_final.pth',
    ),
    apeConfig:
      'configs/LVISCOCOCOCOSTUFF_O365_OID_VGR_SA1B_REFCOCO/ape_deta/ape_deta_vitl_eva02_vlf_lsj1024_cp_1080k.py',
    summary: 'EVA-02 ViT-L backbone, EVA01-CLIP-g text tower, gated fusion, no neck, input 1024',
    unsupported: `${EVA01_TEXT}. Its other settings (gated fusion, no ChannelMapper neck) the code has.`,
  },
  {
    name: 'ape-l-b',
    title: 'APE-L_B',
    preset: null,
    hub: hub(
      'configs/LVISCOCOCOCOSTUFF_O365_OID_VGR_REFCOCO/ape_deta/ape_deta_vitl_eva02_vlf_lsj_cp_1080k_20230702_225418/model_final.pth',
    ),
    apeConfig: 'configs/LVISCOCOCOCOSTUFF_O365_OID_VGR_REFCOCO/ape_deta/ape_deta_vitl_eva02_vlf_lsj1024_cp_1080k.py',
    summary: 'EVA-02 ViT-L backbone, EVA01-CLIP-g text tower, gated fusion, no neck, input 1024',
    unsupported: `${EVA01_TEXT}. Its other settings (gated fusion, no ChannelMapper neck) the code has.`,
  },
  {
    name: 'ape-l-a',
    title: 'APE-L_A',
    preset: null,
    hub: hub(
      'configs/LVISCOCOCOCOSTUFF_O365_OID_VG/ape_deta/ape_deta_vitl_eva02_lsj_cp_720k_20230504_002019/model_final.pth',
    ),
    apeConfig: 'configs/LVISCOCOCOCOSTUFF_O365_OID_VG/ape_deta/ape_deta_vitl_eva02_lsj1024_cp_720k.py',
    summary: 'EVA-02 ViT-L backbone, EVA01-CLIP-g text tower, no fusion, no neck, input 1024',
    unsupported: `${EVA01_TEXT}. Its other settings (no vision-language fusion, no ChannelMapper neck) the code has.`,
  },
];

/** The entry of a released name (case-insensitive; `APE-L_D` is `ape-l-d`), or undefined. */
export function findReleasedModel(name: string): ReleasedModel | undefined {
  const key = name.toLowerCase().replace(/_/g, '-');
  return RELEASED_MODELS.find((m) => m.name === key || m.title.toLowerCase().replace(/_/g, '-') === key);
}

/** Thrown for a released name this project cannot run yet. */
export class UnsupportedModelError extends Error {
  override name = 'UnsupportedModelError';
}

/** The entry of a name that can be used, or an error naming the choices / what differs. */
export function releasedModel(name: string): ReleasedModel & { preset: ApePresetName } {
  const m = findReleasedModel(name);
  if (!m) throw new Error(`'${name}' is not a released model name (${RELEASED_MODELS.map((r) => r.name).join(', ')})`);
  if (!m.preset) throw new UnsupportedModelError(`${m.title} ('${m.name}') is not supported yet: ${m.unsupported}`);
  return m as ReleasedModel & { preset: ApePresetName };
}

/** The config a released model runs with (its preset; input 1024 as trained). */
export function releasedConfig(model: ReleasedModel & { preset: ApePresetName }): ApeConfig {
  return APE_PRESETS[model.preset]();
}
