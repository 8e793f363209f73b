// Handing requests between the gateway's Express 5 app and Node-RED's Express 4 apps, and
// answering refused requests and websocket upgrades before Node-RED sees them. Separate from
// the service (node-red.ts): plain HTTP plumbing with no state of its own.
import type { Duplex } from 'node:stream';
import type express from 'express';
import type { NextFunction, Request, Response } from 'express';
import type { OutpostError } from '../core/errors.js';

/** Answers a refused websocket upgrade with the error's status and closes the socket; Node-RED never sees it. */
export function refuseUpgrade(socket: Duplex, err: OutpostError): void {
  const reason = err.status === 401 ? 'Unauthorized' : err.status === 403 ? 'Forbidden' : err.status === 404 ? 'Not Found' : 'Error';
  socket.end(`HTTP/1.1 ${err.status} ${reason}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
}

export function refuse(res: Response, err: OutpostError): void {
  res.status(err.status).json({ error: err.toJSON() });
}

/**
 * Hands a request to one of Node-RED's Express 4 apps from the gateway's Express 5 app.
 * Express 4 swaps the request/response prototypes for its own; restore them when the
 * request falls through, as Express does for a mounted sub-app. A body the gateway's
 * JSON parser already read is marked parsed (body-parser 1 checks `_body`).
 */
export function delegate(app: express.RequestHandler, req: Request, res: Response, next: NextFunction): void {
  const reqProto = Object.getPrototypeOf(req) as object;
  const resProto = Object.getPrototypeOf(res) as object;
  if (req.body !== undefined) (req as Request & { _body?: boolean })._body = true;
  app(req, res, (err?: unknown) => {
    Object.setPrototypeOf(req, reqProto);
    Object.setPrototypeOf(res, resProto);
    next(err);
  });
}
