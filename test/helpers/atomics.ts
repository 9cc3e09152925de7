/**
 * Resolves once `cells[index]` no longer holds `value` (at once if it already does not):
 * Atomics.waitAsync, in Node.js since 16, typed only from lib es2024 (this project targets es2022).
 */
export async function changed(cells: Int32Array, index: number, value: number): Promise<void> {
  const wait = (Atomics as unknown as { waitAsync(a: Int32Array, i: number, v: number): { async: boolean; value: Promise<string> | string } }).waitAsync(cells, index, value);
  if (wait.async) await wait.value;
}
