import { STATUS_CODES, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { SECURITY_HEADERS } from './abuse';
import { failure } from './envelope';

const HEADERS = Object.entries(SECURITY_HEADERS);

/** Node sets `_httpMessage` to the response in progress on a server socket. */
type ClientSocket = Socket & { _httpMessage?: ServerResponse | null };

/**
 * The envelope, with the security headers, for requests Node's HTTP parser refuses (e.g. a URL over
 * the header limit), written on the raw socket: no request listener sees them.
 */
export function hookServer(server: Server): void {
  const answered = new WeakSet<Socket>();
  server.on('clientError', (err: NodeJS.ErrnoException, socket: ClientSocket) => {
    if (answered.has(socket)) return;
    // As Node does: answer only when no response on this (keep-alive) socket has started.
    if (err.code === 'ECONNRESET' || !socket.writable || socket._httpMessage?.headersSent) {
      socket.destroy();
      return;
    }
    answered.add(socket);
    const status =
      err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
    const payload = JSON.stringify(failure('INVALID_PARAM', 'Malformed or oversized request'));
    // Drain what the client still sends: closing with unread input would reset the connection
    // before the client has read the answer.
    socket.removeAllListeners('data');
    socket.on('data', () => undefined);
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json; charset=utf-8\r\n` +
        HEADERS.map(([name, value]) => `${name}: ${value}\r\n`).join('') +
        `Content-Length: ${Buffer.byteLength(payload)}\r\nConnection: close\r\n\r\n${payload}`,
    );
    setTimeout(() => socket.destroy(), 5000).unref();
  });
}
