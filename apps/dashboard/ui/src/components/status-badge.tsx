/** A run or task status as text on a coloured badge (the colour never carries meaning alone). */
export function StatusBadge({ status, testId }: { status: string; testId?: string }) {
  return (
    <span className={`badge status-${status}`} data-status={status} data-testid={testId}>
      {status}
    </span>
  );
}
