import type { NextFunction, Request, Response } from 'express';

/**
 * Security headers (what helmet sets, without the dependency). The CSP allows only our
 * own scripts, styles and connections: the dashboard works offline and from no CDN, and
 * an injected script from anywhere else does not run (OWASP Secure Headers project).
 */
const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "font-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

const OWN_PATH = /^\/($|index\.html$|ui\/|api\/|healthz$|metrics$)/;

export function securityHeaders(options: { tls: boolean }) {
  return (req: Request, res: Response, next: NextFunction): void => {
    // Only on our own pages and API: other UIs mounted by adapters (the Node-RED editor)
    // bring inline scripts and set their own policy.
    if (OWN_PATH.test(req.path)) res.setHeader('Content-Security-Policy', CONTENT_SECURITY_POLICY);
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('X-Frame-Options', 'DENY');
    res.setHeader('Referrer-Policy', 'no-referrer');
    res.setHeader('Cross-Origin-Opener-Policy', 'same-origin');
    res.setHeader('Cross-Origin-Resource-Policy', 'same-origin');
    res.setHeader('Permissions-Policy', 'camera=(), microphone=(), geolocation=(), payment=()');
    // HSTS only means something over TLS (RFC 6797 §7.2: ignored over plain HTTP).
    if (options.tls) res.setHeader('Strict-Transport-Security', 'max-age=31536000');
    // API answers carry site data: never cached by the browser or a proxy.
    if (req.path.startsWith('/api/')) res.setHeader('Cache-Control', 'no-store');
    next();
  };
}
