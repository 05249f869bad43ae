/**
 * mqtt_secrets.ts: a CA file must hold at least one certificate that
 * parses (a junk one used to surface only as an endless "self-signed
 * certificate" retry loop), errors name the file but never its contents,
 * and userinfo in URLs is masked for error messages.
 */
import assert from "node:assert/strict";
import { loadMqttSecrets, maskUserinfo, redact } from "../mqtt_secrets.ts";
import { needs } from "./_support.ts";
import { makeCerts } from "./_certs.ts";

Deno.test({
  name:
    "MQTT_CA_FILE: PEM certificates accepted; junk, a key or a broken block refused naming the file",
  ignore: needs("openssl"),
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "secrets-ca-" });
    try {
      await makeCerts(dir);
      const pem = await Deno.readTextFile(`${dir}/ca.crt`);
      // One certificate, and a bundle of two.
      assert.equal(loadMqttSecrets({ caFile: `${dir}/ca.crt` }).ca, pem);
      await Deno.writeTextFile(`${dir}/bundle.crt`, pem + "\n" + pem);
      assert.ok(loadMqttSecrets({ caFile: `${dir}/bundle.crt` }).ca);

      const broken = pem.replace(
        /\n[A-Za-z0-9+/]{20}/,
        "\nAAAAAAAAAAAAAAAAAAAA",
      );
      assert.notEqual(broken, pem);
      const cases: [string, string, RegExp][] = [
        [
          "junk.crt",
          "hello, not a certificate secret-junk\n",
          /no PEM certificate in it/,
        ],
        [
          "key.pem",
          await Deno.readTextFile(`${dir}/ca.key`),
          /no PEM certificate in it/,
        ],
        ["empty.crt", "", /no PEM certificate in it/],
        [
          "second-broken.crt",
          pem + broken,
          /certificate 2 of 2 does not parse \(/,
        ],
        [
          "garbled.crt",
          "-----BEGIN CERTIFICATE-----\nc2VjcmV0LWp1bms=\n-----END CERTIFICATE-----\n",
          /certificate 1 of 1 does not parse/,
        ],
      ];
      for (const [name, text, re] of cases) {
        const path = `${dir}/${name}`;
        await Deno.writeTextFile(path, text);
        assert.throws(() => loadMqttSecrets({ caFile: path }), (e: Error) => {
          assert.match(e.message, re, name);
          assert.ok(e.message.startsWith(`MQTT CA file ${path}: `), e.message);
          assert.ok(!e.message.includes("\n"), "one line");
          assert.ok(!/secret-junk|c2VjcmV0/.test(e.message), "contents echoed");
          return true;
        });
      }
      assert.throws(
        () => loadMqttSecrets({ caFile: `${dir}/nope.crt` }),
        /^Error: cannot read MQTT CA file .*nope\.crt: NotFound$/,
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("maskUserinfo hides credentials in what users meant as URLs; redact drops them", () => {
  assert.equal(maskUserinfo("tcp://u:s3cr3tpw@h"), "tcp://***@h");
  assert.equal(maskUserinfo("mqtt://u:pa/ss@h:1883"), "mqtt://***@h:1883");
  assert.equal(maskUserinfo("u:s3cr3tpw@h"), "***@h");
  assert.equal(maskUserinfo("ws://u:p@ss@h/x"), "ws://***@h/x");
  assert.equal(maskUserinfo("ws://localhost:9001"), "ws://localhost:9001");
  assert.equal(redact("mqtt://u:s3cr3tpw@h:1883"), "mqtt://h:1883");
});
