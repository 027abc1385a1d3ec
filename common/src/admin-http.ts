import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { errorMessage, type HostPort } from '@fleetgate/core';
import { closeServer, listen } from './listen.ts';
import type { Logger } from './logger.ts';

export interface JsonResponse {
  status: number;
  body: unknown;
}

/** A 200 answer of many JSON values, one per line (application/x-ndjson), written as they come. */
export interface NdjsonResponse {
  status: 200;
  lines: AsyncIterable<unknown>;
}

export interface RouteRequest {
  /** Values of the `:name` segments of the route's path. */
  params: Record<string, string>;
  query: URLSearchParams;
  /** The parsed JSON body of a POST/PUT, else undefined. */
  body: unknown;
}

/** An answer that is not JSON: a page, the Prometheus text format. */
export interface TextResponse {
  status: number;
  contentType: string;
  text: string;
}

export type RouteResponse = JsonResponse | NdjsonResponse | TextResponse;

export type RouteHandler = (request: RouteRequest) => RouteResponse | Promise<RouteResponse>;

/** Keys are "METHOD /path", where a path segment `:name` matches one segment, e.g. "GET /v1/commands/:id". */
export type Routes = Record<string, RouteHandler>;

const MAX_BODY_BYTES = 1 << 20;

/** A small JSON-over-HTTP server for admin endpoints (/healthz, /v1/stats, ...). */
export class AdminHttpServer {
  private readonly server: Server;
  private readonly routes: Array<{ method: string; segments: string[]; handler: RouteHandler }>;

  constructor(
    routes: Routes,
    private readonly logger: Logger,
  ) {
    this.routes = Object.entries(routes).map(([key, handler]) => {
      const [method = '', path = ''] = key.split(' ');
      return { method, segments: path.split('/'), handler };
    });
    this.server = createServer((req, res) => void this.handle(req, res));
  }

  listen(address: HostPort): Promise<HostPort> {
    return listen(this.server, address, 'admin HTTP listener');
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return closeServer(this.server);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let response: RouteResponse;
    try {
      const url = new URL(req.url ?? '/', 'http://admin');
      const match = this.match(req.method ?? 'GET', url.pathname);
      if (!match) {
        response = { status: 404, body: { error: `no route for ${req.method} ${url.pathname}` } };
      } else {
        const body = req.method === 'POST' || req.method === 'PUT' ? await readJson(req) : undefined;
        response = await match.handler({ params: match.params, query: url.searchParams, body });
      }
    } catch (err: unknown) {
      const status = err instanceof BadRequest ? 400 : 500;
      if (status === 500) this.logger.error({ err }, 'admin request failed');
      response = { status, body: { error: errorMessage(err) } };
    }
    if ('lines' in response) return this.writeLines(res, response.lines);
    if ('text' in response) {
      res.writeHead(response.status, { 'content-type': response.contentType, 'cache-control': 'no-store' });
      res.end(response.text);
      return;
    }
    const payload = JSON.stringify(response.body, null, 2) + '\n';
    res.writeHead(response.status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(payload);
  }

  /** Writes each value as one line, waiting for the socket to drain; a failure midway ends the response early. */
  private async writeLines(res: ServerResponse, lines: AsyncIterable<unknown>): Promise<void> {
    res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
    try {
      let chunk = '';
      for await (const value of lines) {
        if (res.destroyed) return;
        chunk += JSON.stringify(value) + '\n';
        if (chunk.length < 64 * 1024) continue;
        const more = res.write(chunk);
        chunk = '';
        if (!more) await new Promise((resolve) => res.once('drain', resolve).once('close', resolve));
      }
      res.end(chunk);
    } catch (err: unknown) {
      // The status line is gone already: cut the body short, so the client sees an incomplete response.
      this.logger.error({ err }, 'admin stream failed');
      res.destroy();
    }
  }

  private match(method: string, pathname: string) {
    const segments = pathname.split('/');
    for (const route of this.routes) {
      if (route.method !== method || route.segments.length !== segments.length) continue;
      const params: Record<string, string> = {};
      const ok = route.segments.every((segment, i) => {
        const actual = segments[i] ?? '';
        if (segment.startsWith(':')) {
          params[segment.slice(1)] = decodeURIComponent(actual);
          return actual !== '';
        }
        return segment === actual;
      });
      if (ok) return { handler: route.handler, params };
    }
    return undefined;
  }
}

/** Thrown by a handler (or body parsing) to answer 400 with its message. */
export class BadRequest extends Error {
  override name = 'BadRequest';
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new BadRequest(`request body over ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk as Buffer);
  }
  if (size === 0) return undefined;
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new BadRequest('request body is not valid JSON');
  }
}
