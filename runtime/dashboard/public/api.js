// REST client of the dashboard: same-origin cookie session plus the CSRF token for writes.
let csrf = '';

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.message ?? `HTTP ${status}`);
    this.status = status;
    this.code = body?.error?.code ?? 'HTTP_' + status;
    this.details = body?.error?.details;
    this.body = body;
  }
}

export function setCsrf(token) {
  csrf = token ?? '';
}

export async function api(method, path, body) {
  const headers = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET') headers['x-csrf-token'] = csrf;
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'same-origin' });
  const text = await res.text();
  let data;
  try {
    data = text ? JSON.parse(text) : undefined;
  } catch {
    data = text;
  }
  if (!res.ok) {
    if (res.status === 401 && path !== '/api/auth/login' && path !== '/api/auth/me') window.dispatchEvent(new CustomEvent('outpost:logged-out'));
    throw new ApiError(res.status, data);
  }
  return data;
}

/**
 * Is the login still there? Asked when the live connection drops: the server closes it when
 * the session ends (logout elsewhere, expiry, the user removed or changed), and a page that
 * shows only live values makes no REST call that would notice. A 401 sends the page to the
 * login screen; an unreachable gateway is not a logout (the live connection retries).
 */
export async function checkSession() {
  let res;
  try {
    res = await fetch('/api/auth/me', { headers: { accept: 'application/json' }, credentials: 'same-origin', cache: 'no-store' });
  } catch (err) {
    console.debug('session check: gateway unreachable', err);
    return undefined;
  }
  if (res.status === 401) {
    window.dispatchEvent(new CustomEvent('outpost:logged-out'));
    return false;
  }
  return res.ok;
}

export const get = (path) => api('GET', path);
export const post = (path, body) => api('POST', path, body ?? {});
