/**
 * Embedded MQTT broker (npm:aedes) on TCP and WebSocket, so the whole demo
 * runs without Docker or a system Mosquitto. Optionally with a user name and
 * password, and TLS: the TCP listener serves `mqtts://` and the WebSocket
 * listener `wss://` (HTTPS) with a PEM certificate and key.
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
import https from "node:https";
import tls from "node:tls";
import { createPrivateKey, X509Certificate } from "node:crypto";
import type { Duplex } from "node:stream";
import { Aedes } from "aedes";
import { createWebSocketStream, type WebSocket, WebSocketServer } from "ws";
import { readAllOnRead } from "./stream_read_fix.ts";
import { ConfigError, runMain, urlPort } from "./cli.ts";
import { loadMqttSecrets } from "./mqtt_secrets.ts";
import {
  BROKER_OPTIONS,
  MQTT_PASSWORD,
  MQTT_PASSWORD_FILE,
  MQTT_USERNAME,
} from "./settings.ts";

export interface BrokerOptions {
  /** Listen address for both listeners (default 0.0.0.0). */
  host?: string;
  tcpPort: number;
  /** WebSocket listener; omitted means none. */
  wsPort?: number;
  /** When set, clients must present these credentials. */
  username?: string;
  password?: string;
  /** PEM server certificate (chain) and private key for TLS listeners. */
  tls?: { cert: string; key: string };
  /** The TCP listener speaks MQTT over TLS (`mqtts://`); needs `tls`. */
  tcpTls?: boolean;
  /** The WebSocket listener is HTTPS (`wss://`); needs `tls`. */
  wsTls?: boolean;
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

function listen(
  server: net.Server | http.Server,
  port: number,
  host: string,
) {
  return new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
}

/**
 * `createWebSocketStream`, except that destroying it without an error (how
 * aedes ends a connection, e.g. right after a CONNACK refusing bad
 * credentials) first flushes queued writes and closes the WebSocket. Plain
 * destroy() drops writes still buffered in the stream, and over wss:// the
 * refusal was lost that way. A peer that never answers the close frame is
 * cut off after a second.
 */
function gracefulWebSocketStream(socket: WebSocket): Duplex {
  const stream = createWebSocketStream(socket);
  const destroyNow = stream.destroy.bind(stream);
  let closing = false;
  stream.destroy = (err?: Error) => {
    // aedes follows its own destroy() with destroy(err) for the same cause.
    if (closing) return stream;
    if (err || stream.destroyed || socket.readyState !== socket.OPEN) {
      return destroyNow(err);
    }
    closing = true;
    const timer = setTimeout(() => destroyNow(), 1000);
    socket.once("close", () => {
      clearTimeout(timer);
      destroyNow();
    });
    // Flushes the writes, then closes the WebSocket (ws's _final).
    stream.end();
    return stream;
  };
  return stream;
}

/** Start aedes with a TCP listener and optionally a WebSocket listener. */
export async function startBroker(opts: BrokerOptions): Promise<Broker> {
  const host = opts.host ?? "0.0.0.0";
  const log = opts.log ?? ((l: string) => console.error(l));
  if ((opts.tcpTls || opts.wsTls) && !opts.tls) {
    throw new Error("broker: a TLS listener needs a certificate and key");
  }
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

  // Sockets still in the TLS handshake are not in `conns` yet.
  const handshaking = new Set<net.Socket>();
  let tcp: net.Server;
  if (opts.tcpTls) {
    const t = tls.createServer(
      { cert: opts.tls!.cert, key: opts.tls!.key },
      (socket) => handle(socket),
    );
    t.on("connection", (raw: net.Socket) => {
      handshaking.add(raw);
      raw.once("close", () => handshaking.delete(raw));
    });
    t.on("tlsClientError", (err: Error, socket: tls.TLSSocket) => {
      log(
        `broker: TLS handshake from ${socket?.remoteAddress ?? "?"} failed: ${
          err.message.split("\n")[0]
        }`,
      );
    });
    tcp = t;
  } else {
    tcp = net.createServer((socket) => handle(socket));
  }
  try {
    await listen(tcp, opts.tcpPort, host);
  } catch (e) {
    await new Promise<void>((r) => aedes.close(() => r()));
    throw e;
  }
  const tcpPort = (tcp.address() as net.AddressInfo).port;

  let httpServer: http.Server | https.Server | null = null;
  let wss: WebSocketServer | null = null;
  let wsPort: number | null = null;
  if (opts.wsPort !== undefined) {
    const onRequest = (
      _req: http.IncomingMessage,
      res: http.ServerResponse,
    ) => {
      res.writeHead(426, { "content-type": "text/plain" });
      res.end("MQTT over WebSocket only\n");
    };
    httpServer = opts.wsTls
      ? https.createServer(
        { cert: opts.tls!.cert, key: opts.tls!.key },
        onRequest,
      )
      : http.createServer(onRequest);
    wss = new WebSocketServer({ server: httpServer });
    // ws re-emits the HTTP server's errors; listen() below reports them.
    wss.on("error", () => {});
    wss.on("connection", (socket, req) => {
      handle(gracefulWebSocketStream(socket), req);
    });
    try {
      await listen(httpServer, opts.wsPort, host);
    } catch (e) {
      await new Promise<void>((r) => tcp.close(() => r()));
      await new Promise<void>((r) => aedes.close(() => r()));
      throw e;
    }
    wsPort = (httpServer.address() as net.AddressInfo).port;
  }
  log(
    `broker: listening ${opts.tcpTls ? "mqtts" : "mqtt"}://${host}:${tcpPort}` +
      (wsPort ? ` and ${opts.wsTls ? "wss" : "ws"}://${host}:${wsPort}` : "") +
      (opts.username ? " (authentication on)" : ""),
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
        for (const s of handshaking) s.destroy();
        for (const ws of wss?.clients ?? []) ws.terminate();
        wss?.close();
        await new Promise<void>((r) => aedes.close(() => r()));
        await Promise.all([tcpClosed, httpClosed]);
      })();
      return closed;
    },
  };
}

/** The settings `brokerOptionsFromConfig` reads (BROKER_OPTIONS + MQTT user). */
export interface BrokerConfig {
  brokerHost: string;
  mqttUrl: string;
  mqttWsUrl: string;
  brokerTlsCertFile: string;
  brokerTlsKeyFile: string;
  mqttUsername: string;
  mqttPassword: string;
  mqttPasswordFile: string;
}

/**
 * Listener, TLS and credential options from configuration. The scheme of
 * MQTT_URL (`mqtts://`) and MQTT_WS_URL (`wss://`) selects TLS per listener;
 * a TLS URL without BROKER_TLS_CERT_FILE + BROKER_TLS_KEY_FILE, or those
 * without any TLS URL, is a one-line ConfigError. Files are read here;
 * errors name the file, never its contents.
 */
export function brokerOptionsFromConfig(
  cfg: BrokerConfig,
  log?: (line: string) => void,
): BrokerOptions {
  const tcpTls = new URL(cfg.mqttUrl).protocol === "mqtts:";
  const wsTls = new URL(cfg.mqttWsUrl).protocol === "wss:";
  const cert = cfg.brokerTlsCertFile, key = cfg.brokerTlsKeyFile;
  if (!cert !== !key) {
    throw new ConfigError(
      "BROKER_TLS_CERT_FILE and BROKER_TLS_KEY_FILE go together: set both or neither",
    );
  }
  if (!cert && (tcpTls || wsTls)) {
    throw new ConfigError(
      `${
        tcpTls ? "MQTT_URL is mqtts://" : "MQTT_WS_URL is wss://"
      } but BROKER_TLS_CERT_FILE and BROKER_TLS_KEY_FILE are not set`,
    );
  }
  if (cert && !tcpTls && !wsTls) {
    throw new ConfigError(
      "BROKER_TLS_CERT_FILE is set but MQTT_URL is not mqtts:// (nor MQTT_WS_URL wss://)",
    );
  }
  const read = (path: string, what: string) => {
    try {
      return Deno.readTextFileSync(path);
    } catch (e) {
      throw new ConfigError(
        `cannot read ${what} ${path}: ${(e as Error).name}`,
      );
    }
  };
  let password: string | undefined;
  try {
    ({ password } = loadMqttSecrets({
      password: cfg.mqttPassword,
      passwordFile: cfg.mqttPasswordFile,
    }));
  } catch (e) {
    throw new ConfigError((e as Error).message);
  }
  return {
    host: cfg.brokerHost,
    tcpPort: urlPort(cfg.mqttUrl),
    wsPort: urlPort(cfg.mqttWsUrl),
    username: cfg.mqttUsername || undefined,
    password,
    tls: cert
      ? checkedTlsPair(
        read(cert, "BROKER_TLS_CERT_FILE"),
        read(key, "BROKER_TLS_KEY_FILE"),
        cert,
        key,
      )
      : undefined,
    tcpTls,
    wsTls,
    log,
  };
}

/**
 * The certificate and key, checked now: node:tls under Deno accepts junk
 * here and every handshake then fails later as "unsupported protocol".
 */
function checkedTlsPair(
  cert: string,
  key: string,
  certPath: string,
  keyPath: string,
): { cert: string; key: string } {
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch {
    throw new ConfigError(
      `BROKER_TLS_CERT_FILE ${certPath} is not a PEM certificate`,
    );
  }
  let privateKey;
  try {
    privateKey = createPrivateKey(key);
  } catch {
    throw new ConfigError(
      `BROKER_TLS_KEY_FILE ${keyPath} is not a PEM private key`,
    );
  }
  if (!x509.checkPrivateKey(privateKey)) {
    throw new ConfigError(
      `BROKER_TLS_KEY_FILE ${keyPath} is not the private key of BROKER_TLS_CERT_FILE ${certPath}`,
    );
  }
  return { cert, key };
}

if (import.meta.main) {
  await runMain(
    "broker",
    "embedded MQTT broker (TCP and WebSocket, optionally TLS)",
    {
      ...BROKER_OPTIONS,
      mqttUsername: MQTT_USERNAME,
      mqttPassword: MQTT_PASSWORD,
      mqttPasswordFile: MQTT_PASSWORD_FILE,
    },
    async (cfg) => {
      const broker = await startBroker(brokerOptionsFromConfig(cfg));
      const stop = async () => {
        await broker.close();
        Deno.exit(0);
      };
      Deno.addSignalListener("SIGINT", stop);
      Deno.addSignalListener("SIGTERM", stop);
    },
  );
}
