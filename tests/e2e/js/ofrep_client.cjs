// ofrep_client.cjs: evaluates flags through the OpenFeature server SDK and its
// OFREP provider (the packages pinned in package.json) against a running
// `pricing serve`, and prints one JSON line per evaluation for test_config.py.
//
//   node ofrep_client.cjs BASE_URL SPEC_JSON
// SPEC_JSON: [{"flag":"name","type":"boolean|string|number|object","default":V,
//              "context":{"targetingKey":"u1",...}}, ...]
// Output lines: {"flag","value","reason","variant","errorCode"}
'use strict';
const { OpenFeature } = require('@openfeature/server-sdk');
const { OFREPProvider } = require('@openfeature/ofrep-provider');

async function main() {
  const [baseUrl, specText] = process.argv.slice(2);
  const spec = JSON.parse(specText);
  await OpenFeature.setProviderAndWait(new OFREPProvider({ baseUrl, timeoutMs: 5000 }));
  const client = OpenFeature.getClient();
  const getters = {
    boolean: client.getBooleanDetails.bind(client),
    string: client.getStringDetails.bind(client),
    number: client.getNumberDetails.bind(client),
    object: client.getObjectDetails.bind(client),
  };
  for (const s of spec) {
    const d = await getters[s.type](s.flag, s.default, s.context);
    console.log(JSON.stringify({
      flag: s.flag, value: d.value, reason: d.reason, variant: d.variant ?? null,
      errorCode: d.errorCode ?? null,
    }));
  }
  await OpenFeature.close();
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : String(e));
  process.exit(1);
});
