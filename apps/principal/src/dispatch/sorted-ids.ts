/** Index of the first element of the sorted `arr` that is not below `id`. */
function lowerBound(arr: readonly string[], id: string): number {
  let lo = 0;
  let hi = arr.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((arr[mid] ?? "") < id) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Insert `id` into the ascending `arr` (binary search), unless it is there already. */
export function insertSorted(arr: string[], id: string): void {
  const i = lowerBound(arr, id);
  if (arr[i] !== id) arr.splice(i, 0, id);
}

/** Remove `id` from the ascending `arr` (binary search), if it is there. */
export function removeSorted(arr: string[], id: string): void {
  const i = lowerBound(arr, id);
  if (arr[i] === id) arr.splice(i, 1);
}
