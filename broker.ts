/**
 * Embedded MQTT broker (npm:aedes) on TCP and WebSocket, so the whole demo
 * runs without Docker or a system Mosquitto.
 *
 * @example
 * ```ts
 * const broker = await startBroker({ tcpPort: 1883, wsPort: 9001 });
 * // ...
 * await broker.close();
 * ```
 */
import net from "node:net";
import http from "node:http";
import type { Duplex } from "node:stream";
import { Aedes } from "aedes";
import { createWebSocketStream, WebSocketServer } from "ws";
import { readAllOnRead } from "./stream_read_fix.ts";
import { runMain, urlPort } from "./cli.ts";
import { BROKER_OPTIONS, MQTT_PASSWORD, MQTT_USERNAME } from "./settings.ts";

export interface BrokerOptions {
  /** Listen address for both listeners (default 0.0.0.0). */
  host?: string;
  tcpPort: number;
  /** WebSocket listener; omitted means none. */
  wsPort?: number;
  /** When set, clients must present these credentials. */
  username?: string;
  password?: string;
  log?: (line: string) => void;
  /** Test hook: skip the stream read fix to prove it is needed. */
  withoutReadFix?: boolean;
}

export interface Broker {
  tcpPort: number;
  wsPort: number | null;
  /** Stops listening, disconnects every client and closes the broker. */
  close(): Promise<void>;
}

function listen(server: net.Server | http.Server, port: number, host: string) {
  return new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
}

/** Start aedes with a TCP listener and optionally a WebSocket listener. */
export async function startBroker(opts: BrokerOptions): Promise<Broker> {
  const host = opts.host ?? "0.0.0.0";
  const log = opts.log ?? ((l: string) => console.error(l));
  const aedes = await Aedes.createBroker();
  if (opts.username) {
    const user = opts.username;
    const pass = opts.password ?? "";
    aedes.authenticate = (_client, username, password, done) => {
      const ok = username === user && password?.toString() === pass;
      if (ok) return done(null, true);
      const err = Object.assign(new Error("bad user name or password"), {
        returnCode: 4,
      });
      done(err as never, false);
    };
  }
  aedes.on("clientError", (client, err) => {
    log(`broker: client ${client.id} error: ${err.message}`);
  });

  const conns = new Set<Duplex>();
  const handle = (stream: Duplex, req?: http.IncomingMessage) => {
    conns.add(stream);
    stream.once("close", () => conns.delete(stream));
    aedes.handle(opts.withoutReadFix ? stream : readAllOnRead(stream), req);
  };

  const tcp = net.createServer((socket) => handle(socket));
  await listen(tcp, opts.tcpPort, host);
  const tcpPort = (tcp.address() as net.AddressInfo).port;

  let httpServer: http.Server | null = null;
  let wss: WebSocketServer | null = null;
  let wsPort: number | null = null;
  if (opts.wsPort !== undefined) {
    httpServer = http.createServer((_req, res) => {
      res.writeHead(426, { "content-type": "text/plain" });
      res.end("MQTT over WebSocket only\n");
    });
    wss = new WebSocketServer({ server: httpServer });
    // ws re-emits the HTTP server's errors; listen() below reports them.
    wss.on("error", () => {});
    wss.on("connection", (socket, req) => {
      handle(createWebSocketStream(socket), req);
    });
    await listen(httpServer, opts.wsPort, host);
    wsPort = (httpServer.address() as net.AddressInfo).port;
  }
  log(
    `broker: listening mqtt://${host}:${tcpPort}` +
      (wsPort ? ` and ws://${host}:${wsPort}` : ""),
  );

  let closed: Promise<void> | null = null;
  return {
    tcpPort,
    wsPort,
    close() {
      closed ??= (async () => {
        const tcpClosed = new Promise<void>((r) => tcp.close(() => r()));
        const httpClosed = httpServer
          ? new Promise<void>((r) => httpServer!.close(() => r()))
          : Promise.resolve();
        for (const c of conns) c.destroy();
        for (const ws of wss?.clients ?? []) ws.terminate();
        wss?.close();
        await new Promise<void>((r) => aedes.close(() => r()));
        await Promise.all([tcpClosed, httpClosed]);
      })();
      return closed;
    },
  };
}

if (import.meta.main) {
  await runMain(
    "broker",
    "embedded MQTT broker (TCP and WebSocket)",
    {
      ...BROKER_OPTIONS,
      mqttUsername: MQTT_USERNAME,
      mqttPassword: MQTT_PASSWORD,
    },
    async (cfg) => {
      const broker = await startBroker({
        host: cfg.brokerHost,
        tcpPort: urlPort(cfg.mqttUrl),
        wsPort: urlPort(cfg.mqttWsUrl),
        username: cfg.mqttUsername || undefined,
        password: cfg.mqttPassword,
      });
      const stop = async () => {
        await broker.close();
        Deno.exit(0);
      };
      Deno.addSignalListener("SIGINT", stop);
      Deno.addSignalListener("SIGTERM", stop);
    },
  );
}
