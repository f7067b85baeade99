#!/usr/bin/env node
// Validation for rdmesh's chart and webhook tests:
//   node validate.js FILE...                 every object (YAML or JSON, multi-document) against
//                                            the Kubernetes OpenAPI schema (kubernetes-models)
//   node validate.js --values SCHEMA FILE    chart values (JSON) against values.schema.json (ajv)
// Prints each failure with kind/name and the schema's reason; exit 1 on any failure.
'use strict';
const fs = require('fs');
const YAML = require('yaml');

function fail(messages) {
  for (const m of messages) console.error(m);
  process.exit(1);
}

if (process.argv[2] === '--values') {
  const Ajv = require('ajv');
  const schema = JSON.parse(fs.readFileSync(process.argv[3], 'utf8'));
  const values = JSON.parse(fs.readFileSync(process.argv[4], 'utf8'));
  const ajv = new Ajv({allErrors: true, strict: false});
  const validate = ajv.compile(schema);
  if (!validate(values)) {
    fail(validate.errors.map((e) => `values${e.instancePath.replace(/\//g, '.')}: ${e.message}` +
                                   (e.params && e.params.allowedValues ? ` (${e.params.allowedValues.join(', ')})` : '') +
                                   (e.params && e.params.additionalProperty ? ` ('${e.params.additionalProperty}')` : '')));
  }
  console.log('values: valid');
  process.exit(0);
}

const errors = [];
let count = 0;
for (const file of process.argv.slice(2)) {
  const docs = YAML.parseAllDocuments(fs.readFileSync(file, 'utf8'));
  for (const doc of docs) {
    if (doc.errors.length) {
      errors.push(`${file}: YAML: ${doc.errors[0].message}`);
      continue;
    }
    const object = doc.toJSON();
    if (object === null || object === undefined) continue;
    const name = `${file}: ${object.kind}/${object.metadata && object.metadata.name}`;
    const [group, version] = object.apiVersion.includes('/') ? object.apiVersion.split('/') : [null, object.apiVersion];
    const modulePath = group ? `kubernetes-models/${group}/${version}/${object.kind}` : `kubernetes-models/${version}/${object.kind}`;
    let Model;
    try {
      Model = require(modulePath)[object.kind];
    } catch (e) {
      errors.push(`${name}: no schema for ${object.apiVersion} ${object.kind}`);
      continue;
    }
    try {
      new Model(object).validate();
      count++;
    } catch (e) {
      errors.push(`${name}: ${e.message}`);
    }
  }
}
if (errors.length) fail(errors);
console.log(`${count} object(s) valid`);
