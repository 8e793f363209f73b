import { readLocalAccess } from '../../runtime/auth/local-access.js';

/**
 * `fetch` against a running gateway as `outpost api` calls it: with the token from
 * `<dataDir>/auth/local-access.json` (read at every call: a restarted gateway has a new one).
 * `path` is `/api/...` or `/metrics`.
 */
export function localApi(dataDir: string): (path: string, init?: RequestInit) => Promise<Response> {
  return async (path, init = {}) => {
    const access = await readLocalAccess(dataDir);
    const headers = new Headers(init.headers);
    headers.set('authorization', `Bearer ${access.token}`);
    return fetch(new URL(path, access.url), { ...init, headers });
  };
}
