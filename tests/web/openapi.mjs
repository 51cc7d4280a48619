// Validates an OpenAPI document with @apidevtools/swagger-parser (the
// validator client generators build on): YAML read strictly, references
// resolved, the document checked against the OpenAPI 3.1 schema.
// usage: node openapi.mjs FILE   -> exit 0 and "valid: ..." or exit 1 and why
import SwaggerParser from "@apidevtools/swagger-parser";

try {
  const api = await SwaggerParser.validate(process.argv[2]);
  console.log(`valid: ${api.info.title} ${api.info.version}, OpenAPI ${api.openapi}, ` +
              `${Object.keys(api.paths).length} paths`);
} catch (e) {
  console.error(`invalid: ${String(e.message).slice(0, 4000)}`);
  process.exit(1);
}
