import { createReadStream } from 'node:fs';
import type { ServerResponse } from 'node:http';
import path from 'node:path';
import { PAGE_HEADERS } from './abuse';
import { sendEnvelope } from './envelope';

/** The dashboard's charts, served from the project (chart.js exports no subpath for its UMD file). */
export function serveChartJs(res: ServerResponse): void {
  let file: string;
  try {
    file = path.join(path.dirname(require.resolve('chart.js')), 'chart.umd.js');
  } catch {
    return sendEnvelope(res, 404, { code: 404, message: 'Not found', data: null });
  }
  res.writeHead(200, {
    'Content-Type': 'application/javascript; charset=utf-8',
    'Cache-Control': 'public, max-age=86400',
  });
  createReadStream(file)
    .on('error', () => res.destroy())
    .pipe(res);
}

const PAGE_HEADER_LIST = Object.entries(PAGE_HEADERS);

/** The pages and their scripts from `folder`, each file with the pages' headers over every answer's. */
export function pageAssets(folder: string) {
  const setHeaders = (res: ServerResponse) => {
    for (const [name, value] of PAGE_HEADER_LIST) res.setHeader(name, value);
  };
  return { folder, options: { index: 'index.html', setHeaders } };
}
