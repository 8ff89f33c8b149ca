import net, { type AddressInfo, type Socket } from 'node:net';

/**
 * A TCP proxy the test controls, to simulate a dependency outage without touching the shared
 * server: point the service at `proxy.port`, then `cut()` drops every connection and refuses new
 * ones (accepted and reset at once, so clients see ECONNRESET and retry), `restore()` forwards again.
 */
export class TcpProxy {
  private readonly sockets = new Set<Socket>();
  private cutSince: number | null = null;
  private holes = false;
  /** Connections forwarded since start, and connections refused while cut. */
  readonly stats = { forwarded: 0, refused: 0, cuts: 0 };

  private constructor(
    private readonly server: net.Server,
    readonly targetHost: string,
    readonly targetPort: number,
  ) {}

  static async start(targetPort: number, targetHost = '127.0.0.1'): Promise<TcpProxy> {
    const server = net.createServer();
    const proxy = new TcpProxy(server, targetHost, targetPort);
    server.on('connection', (client) => proxy.accept(client));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    return proxy;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  get isCut(): boolean {
    return this.cutSince !== null;
  }

  /** Live connections (client side and upstream side counted once). */
  get connections(): number {
    return this.sockets.size / 2;
  }

  /** Drops every connection through the proxy and refuses new ones until `restore()`. */
  cut(): void {
    if (this.cutSince === null) this.stats.cuts++;
    this.cutSince ??= Date.now();
    for (const socket of this.sockets) reset(socket);
    this.sockets.clear();
  }

  restore(): void {
    this.cutSince = null;
    this.holes = false;
  }

  /**
   * Keeps every connection open but forwards nothing more, either way (new ones too): requests
   * vanish and answers never come, as when a network path goes dark. `restore()` ends it for new
   * connections.
   */
  blackhole(): void {
    this.holes = true;
    for (const socket of this.sockets) {
      socket.unpipe();
      socket.removeAllListeners('data');
      socket.on('data', () => undefined);
    }
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: Socket): void {
    if (this.cutSince !== null) {
      this.stats.refused++;
      reset(client);
      return;
    }
    this.stats.forwarded++;
    const upstream = net.connect(this.targetPort, this.targetHost);
    this.sockets.add(client);
    this.sockets.add(upstream);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    if (this.holes) {
      client.on('data', () => undefined);
      upstream.on('data', () => undefined);
    } else {
      client.pipe(upstream);
      upstream.pipe(client);
    }
    const drop = () => {
      this.sockets.delete(client);
      this.sockets.delete(upstream);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop);
    upstream.on('error', drop);
    client.on('close', drop);
    upstream.on('close', drop);
  }
}

function reset(socket: Socket): void {
  socket.on('error', () => undefined);
  // RST rather than FIN: the peer sees the connection break, as with a network fault.
  if (typeof socket.resetAndDestroy === 'function' && !socket.destroyed && socket.readyState !== 'opening') {
    socket.resetAndDestroy();
  } else {
    socket.destroy();
  }
}
