import type { ThingShape } from './categories.js';

/**
 * Shape geometry. Every shape is defined by an inside test in its own unit frame (u right, v
 * down, the shape within the unit circle), so one rasteriser serves all of them and masks are
 * exact: a pixel belongs to the shape when its centre passes the test.
 */
export interface ShapePlacement {
  shape: ThingShape;
  /** Centre in pixels. */
  cx: number;
  cy: number;
  /** Pixels per unit of the shape frame (about half the shape's width). */
  radius: number;
  /** Radians, clockwise in image coordinates. */
  rotation: number;
}

function regularPolygon(sides: number, startAngle: number): number[] {
  const pts: number[] = [];
  for (let i = 0; i < sides; i++) {
    const a = startAngle + (2 * Math.PI * i) / sides;
    pts.push(Math.cos(a), Math.sin(a));
  }
  return pts;
}

function starPolygon(points: number, inner: number): number[] {
  const pts: number[] = [];
  for (let i = 0; i < 2 * points; i++) {
    const a = -Math.PI / 2 + (Math.PI * i) / points;
    const r = i % 2 === 0 ? 1 : inner;
    pts.push(r * Math.cos(a), r * Math.sin(a));
  }
  return pts;
}

const TRIANGLE = regularPolygon(3, -Math.PI / 2);
const HEXAGON = regularPolygon(6, 0);
const STAR = starPolygon(5, 0.45);

function insidePolygon(poly: readonly number[], u: number, v: number): boolean {
  let inside = false;
  const n = poly.length / 2;
  for (let i = 0, j = n - 1; i < n; j = i++) {
    const xi = poly[2 * i]!;
    const yi = poly[2 * i + 1]!;
    const xj = poly[2 * j]!;
    const yj = poly[2 * j + 1]!;
    if (yi > v !== yj > v && u < ((xj - xi) * (v - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

/** Whether the unit-frame point (u, v) lies inside `shape`. */
export function shapeContains(shape: ThingShape, u: number, v: number): boolean {
  switch (shape) {
    case 'circle':
      return u * u + v * v <= 1;
    case 'ring': {
      const r2 = u * u + v * v;
      return r2 <= 1 && r2 >= 0.3;
    }
    case 'square':
      return Math.abs(u) <= 0.72 && Math.abs(v) <= 0.72;
    case 'triangle':
      return insidePolygon(TRIANGLE, u, v);
    case 'hexagon':
      return insidePolygon(HEXAGON, u, v);
    case 'star':
      return insidePolygon(STAR, u, v);
    case 'cross':
      return (Math.abs(u) <= 0.32 && Math.abs(v) <= 0.95) || (Math.abs(v) <= 0.32 && Math.abs(u) <= 0.95);
    case 'heart': {
      // (x^2 + y^2 - 1)^3 - x^2 y^3 <= 0, y up, scaled and shifted to sit in the unit circle.
      const x = u * 1.35;
      const y = 0.12 - v * 1.35;
      const q = x * x + y * y - 1;
      return q * q * q - x * x * y * y * y <= 0;
    }
  }
}

/** Maps an image pixel centre into the shape's unit frame. */
export function toShapeFrame(p: ShapePlacement, px: number, py: number): [number, number] {
  const dx = px - p.cx;
  const dy = py - p.cy;
  const c = Math.cos(p.rotation);
  const s = Math.sin(p.rotation);
  return [(dx * c + dy * s) / p.radius, (-dx * s + dy * c) / p.radius];
}

/** The full (unoccluded) pixel mask of a placed shape, row-major height*width; clipped to the image. */
export function rasterizeShape(p: ShapePlacement, width: number, height: number): Uint8Array {
  const mask = new Uint8Array(width * height);
  const reach = p.radius * 1.05 + 1;
  const x0 = Math.max(0, Math.floor(p.cx - reach));
  const x1 = Math.min(width - 1, Math.ceil(p.cx + reach));
  const y0 = Math.max(0, Math.floor(p.cy - reach));
  const y1 = Math.min(height - 1, Math.ceil(p.cy + reach));
  for (let y = y0; y <= y1; y++) {
    for (let x = x0; x <= x1; x++) {
      const [u, v] = toShapeFrame(p, x + 0.5, y + 0.5);
      if (shapeContains(p.shape, u, v)) mask[y * width + x] = 1;
    }
  }
  return mask;
}
