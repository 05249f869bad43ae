/**
 * A loopback TCP forwarder that a test can cut and resume, to take one
 * client's network path away while the server behind it stays up.
 */
import net from "node:net";

export class TcpProxy {
  #port = 0;
  readonly #target: number;
  #server: net.Server | null = null;
  #sockets = new Set<net.Socket>();

  private constructor(target: number) {
    this.#target = target;
  }

  /** Forward a free loopback port to `targetPort` on 127.0.0.1. */
  static async start(targetPort: number): Promise<TcpProxy> {
    const p = new TcpProxy(targetPort);
    p.#port = await p.#listen(0);
    return p;
  }

  get port(): number {
    return this.#port;
  }

  #listen(port: number): Promise<number> {
    const srv = net.createServer((client) => {
      const upstream = net.connect(this.#target, "127.0.0.1");
      for (const s of [client, upstream]) {
        this.#sockets.add(s);
        s.on("error", () => {});
        s.on("close", () => {
          this.#sockets.delete(s);
          client.destroy();
          upstream.destroy();
        });
      }
      client.pipe(upstream);
      upstream.pipe(client);
    });
    this.#server = srv;
    return new Promise((resolve, reject) => {
      srv.once("error", reject);
      srv.listen(port, "127.0.0.1", () => {
        srv.off("error", reject);
        resolve((srv.address() as net.AddressInfo).port);
      });
    });
  }

  /** Refuse new connections and reset the open ones. */
  async cut(): Promise<void> {
    const srv = this.#server;
    this.#server = null;
    for (const s of this.#sockets) s.destroy();
    if (srv) await new Promise<void>((r) => srv.close(() => r()));
  }

  /** Accept connections again, on the same port. */
  async resume(): Promise<void> {
    if (!this.#server) await this.#listen(this.port);
  }

  close(): Promise<void> {
    return this.cut();
  }
}
