/** The drawing side's public surface (re-exported by src/index.ts); no Node imports below. */
export { createRgbImage, cloneRgbImage, blit, resizeNearest, grayToRgb, blendPixel } from './image.js';
export { hsvToRgb, distinctColor, distinctPalette, contrastingText, shade, clampByte } from './palette.js';
export type { Rgb } from './palette.js';
export { fillRect, strokeRect } from './rect.js';
export { drawLine, drawPolyline } from './line.js';
export { rasterizePolygons, fillPolygons } from './polygon.js';
export { blendMask, drawMaskContour, colorizeLabels } from './mask.js';
export { FONT, drawText, measureText, wrapText } from './font.js';
export type { TextStyle } from './font.js';
export { drawOverlays } from './overlay.js';
export type { OverlayInstance, OverlayOptions } from './overlay.js';
export { contactSheet } from './contact-sheet.js';
export type { ContactSheetOptions } from './contact-sheet.js';
export { drawInstances, promptColor, maskPixels } from './overlay-prediction.js';
export type { DrawInstancesOptions } from './overlay-prediction.js';
export { drawSemantic, semanticColorMap, semanticAreas } from './semantic-map.js';
export type { DrawSemanticOptions, SemanticArea } from './semantic-map.js';
