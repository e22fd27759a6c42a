/** `ape/train` (Node): datasets and the synthetic world, samples, assignment, losses, optimizer, checkpoints, runs. */
export * from './training/api.js';
export * from './data/synth/api.js';
