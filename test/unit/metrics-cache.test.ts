/**
 * The /metrics render budget (src/admin/metrics-cache.ts) on a fake monotonic clock: fresh renders
 * below 20 a second, the newest shared past it — for failed renders too (a registry that throws
 * on every render used to be rendered once per request of a flood).
 */
import { describe, expect, it } from 'vitest';
import { cachedRender, type Rendered } from '../../src/admin/metrics-cache.js';

function counting(fail: boolean) {
  let renders = 0;
  const render = async (): Promise<Rendered> => {
    renders++;
    if (fail) throw new Error(`render ${renders} failed`);
    return { contentType: 'text/plain', text: `render ${renders}` };
  };
  return { render, renders: () => renders };
}

describe('cachedRender', () => {
  it('renders fresh below the budget and shares the newest render past it, until the window moves', async () => {
    let clock = 0;
    const source = counting(false);
    const get = cachedRender(source.render, 20, () => clock);
    for (let i = 0; i < 20; i++) expect((await get()).text).toBe(`render ${i + 1}`);
    for (let i = 0; i < 1000; i++) expect((await get()).text).toBe('render 20');
    expect(source.renders()).toBe(20);
    clock = 1000;
    expect((await get()).text).toBe('render 21');
  });

  it('a render that always fails is still tried at most 20 times a second; callers past the budget get the failure', async () => {
    let clock = 0;
    const source = counting(true);
    const get = cachedRender(source.render, 20, () => clock);
    // One after the other, as pipelined requests on a connection arrive.
    for (let i = 0; i < 1000; i++) await expect(get()).rejects.toThrow(/failed/);
    expect(source.renders()).toBe(20);
    clock = 1000;
    await expect(get()).rejects.toThrow('render 21 failed');
  });
});
