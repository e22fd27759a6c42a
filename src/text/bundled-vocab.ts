import { fileURLToPath } from 'node:url';

/**
 * The CLIP BPE merges file that ships with the package (vocab/, MIT licence, see its README),
 * found from this file so that it works from src/ (tsx) and dist/ alike.
 */
export const BUNDLED_CLIP_VOCAB = fileURLToPath(new URL('../../vocab/bpe_simple_vocab_16e6.txt.gz', import.meta.url));
