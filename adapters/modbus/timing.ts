import { performance } from 'node:perf_hooks';

/**
 * Runs `fn` once `performance.now()` has reached `deadline`, never before it, and as
 * soon after it as the event loop allows. Returns a cancel function.
 *
 * Why not `setTimeout(fn, Math.ceil(wait))`: Node timers count whole milliseconds of a
 * truncated loop clock, so a 2 ms timer may fire after only ~1.01 ms of real time, and
 * at best lands on the next whole millisecond. For the RTU inter-frame gap (1.75 ms at
 * and above 19200 baud, Modbus over Serial Line V1.02 §2.5.1.1) the first breaks the
 * spec and the second wastes up to a millisecond per frame. So a timer of floor(left)
 * ms — which fires after more than floor(left) − 1 ms and at most ~floor(left) ms, never
 * past the deadline — covers the wait down to the last millisecond, and setImmediate
 * turns (which keep serving I/O in between) finish that last sub-millisecond stretch.
 */
export function atOrAfter(deadline: number, fn: () => void): () => void {
  let timer: NodeJS.Timeout | undefined;
  let immediate: NodeJS.Immediate | undefined;
  let cancelled = false;
  const check = (): void => {
    timer = undefined;
    immediate = undefined;
    if (cancelled) return;
    const left = deadline - performance.now();
    if (left <= 0) fn();
    else if (left >= 1) timer = setTimeout(check, Math.floor(left));
    else immediate = setImmediate(check);
  };
  const left = deadline - performance.now();
  if (left >= 1) timer = setTimeout(check, Math.floor(left));
  else immediate = setImmediate(check);
  return () => {
    cancelled = true;
    if (timer) clearTimeout(timer);
    if (immediate) clearImmediate(immediate);
  };
}
