#!/usr/bin/env node
// Renders helm/rdmesh with tests/helm/render (Helm's template semantics) for several value
// sets and asserts what matters: every object valid for Kubernetes, selectors matching, ports as
// ARCHITECTURE.md says, RBAC least privilege, the webhook pointing at rdmesh-xds, the CA shared by
// the Secret and caBundle, values.schema.json refusing bad values, and a clear failure for HA
// without etcd.
//   node chart_test.js RENDERER CHART_DIR WORK_DIR
'use strict';
const fs = require('fs');
const path = require('path');
const {execFileSync, spawnSync} = require('child_process');
const YAML = require('./validate/node_modules/yaml');

const [renderer, chart, work] = process.argv.slice(2);
const validator = path.join(__dirname, 'validate', 'validate.js');
let failures = 0;
let checks = 0;
function check(cond, what) {
  checks++;
  if (!cond) {
    failures++;
    console.error(`FAIL: ${what}`);
  }
}
function render(args) {
  const r = spawnSync(renderer, ['--namespace', 'rdmesh-system', ...args, chart], {encoding: 'utf8'});
  return {status: r.status, out: r.stdout, err: r.stderr};
}
function objects(text) {
  return YAML.parseAllDocuments(text).map((d) => d.toJSON()).filter((o) => o);
}
function find(list, kind, name) {
  return list.find((o) => o.kind === kind && o.metadata.name === name);
}
function valuesOk(args) {
  const r = spawnSync(renderer, ['--print-values', ...args, chart], {encoding: 'utf8'});
  fs.writeFileSync(path.join(work, 'values.json'), r.stdout);
  return spawnSync('node', [validator, '--values', path.join(chart, 'values.schema.json'),
                           path.join(work, 'values.json')], {encoding: 'utf8'});
}
function matches(selector, labels) {
  return Object.entries(selector).every(([k, v]) => labels && labels[k] === v);
}

fs.mkdirSync(work, {recursive: true});

// ---- default values
const def = render([]);
check(def.status === 0, `default render: ${def.err}`);
fs.writeFileSync(path.join(work, 'default.yaml'), def.out);
const valid = spawnSync('node', [validator, path.join(work, 'default.yaml')], {encoding: 'utf8'});
check(valid.status === 0, `default objects valid for Kubernetes: ${valid.stderr}`);
check(valuesOk([]).status === 0, 'default values pass values.schema.json');
const o = objects(def.out);
const deploy = find(o, 'Deployment', 'rdmesh-xds');
const ds = find(o, 'DaemonSet', 'rdmesh-node');
const svc = find(o, 'Service', 'rdmesh-xds');
const hook = find(o, 'MutatingWebhookConfiguration', 'rdmesh-sidecar-injector');
const role = o.find((x) => x.kind === 'ClusterRole');
const caSecret = find(o, 'Secret', 'rdmesh-ca');
check(deploy && ds && svc && hook && role && caSecret, 'every object is rendered');

// Selectors match the pods they select.
check(matches(deploy.spec.selector.matchLabels, deploy.spec.template.metadata.labels), 'Deployment selector');
check(matches(ds.spec.selector.matchLabels, ds.spec.template.metadata.labels), 'DaemonSet selector');
check(matches(svc.spec.selector, deploy.spec.template.metadata.labels), 'Service selects rdmesh-xds pods');
check(!matches(svc.spec.selector, ds.spec.template.metadata.labels), 'Service does not select rdmesh-node pods');
for (const kind of ['PodDisruptionBudget', 'NetworkPolicy']) {
  const x = o.find((y) => y.kind === kind);
  const sel = kind === 'NetworkPolicy' ? x.spec.podSelector.matchLabels : x.spec.selector.matchLabels;
  check(matches(sel, deploy.spec.template.metadata.labels), `${kind} selects rdmesh-xds`);
}

// Ports (ARCHITECTURE.md): xDS TLS 15012, webhook 15017 behind the Service's 443, agent 15008.
const xds = deploy.spec.template.spec.containers[0];
const containerPort = (name) => xds.ports.find((p) => p.name === name).containerPort;
const svcPort = (port) => svc.spec.ports.find((p) => p.port === port);
check(containerPort('xds-tls') === 15012 && svcPort(15012).targetPort === 'xds-tls', 'xDS 15012');
check(containerPort('webhook') === 15017 && svcPort(443).targetPort === 'webhook', 'webhook 443 -> 15017');
check(xds.args.includes('--webhook-port=15017') && xds.args.includes('--port=15012'), 'xds flags name the ports');
check(xds.args.some((a) => a.startsWith('--service-dns=') && a.includes('rdmesh-xds.rdmesh-system.svc')),
      'serving certificate names the Service');
check(ds.spec.template.spec.containers[0].ports[0].containerPort === 15008, 'agent 15008');

// The webhook: rdmesh-xds's Service, /inject, the label, never blocking by default.
const w = hook.webhooks[0];
check(w.clientConfig.service.name === 'rdmesh-xds' && w.clientConfig.service.namespace === 'rdmesh-system' &&
      w.clientConfig.service.path === '/inject' && w.clientConfig.service.port === 443, 'webhook service');
check(w.namespaceSelector.matchLabels['rdmesh-injection'] === 'enabled', 'namespace label');
check(w.failurePolicy === 'Ignore' && w.sideEffects === 'None', 'failurePolicy Ignore by default');
check(JSON.stringify(w.admissionReviewVersions) === '["v1","v1beta1"]', 'review versions');
check(JSON.stringify(w.rules[0].resources) === '["pods"]' && JSON.stringify(w.rules[0].operations) === '["CREATE"]',
      'only pod CREATE');
check(Buffer.from(w.clientConfig.caBundle, 'base64').toString() ===
      Buffer.from(caSecret.data['ca.crt'], 'base64').toString(), 'caBundle is the CA rdmesh-xds issues from');
const caText = Buffer.from(caSecret.data['ca.crt'], 'base64').toString();
fs.writeFileSync(path.join(work, 'ca.crt'), caText);
fs.writeFileSync(path.join(work, 'ca.key'), Buffer.from(caSecret.data['ca.key'], 'base64'));
fs.writeFileSync(path.join(work, 'caBundle.pem'), Buffer.from(w.clientConfig.caBundle, 'base64'));
const caCheck = spawnSync('openssl', ['x509', '-noout', '-text', '-in', path.join(work, 'ca.crt')], {encoding: 'utf8'});
check(caCheck.status === 0 && caCheck.stdout.includes('CA:TRUE'), 'the chart CA is a CA certificate');

// RBAC: exactly list/watch on pods, services, nodes, endpointslices.
const rules = role.rules.map((r) => `${r.apiGroups.join()}|${r.resources.sort().join()}|${r.verbs.sort().join()}`).sort();
check(JSON.stringify(rules) === JSON.stringify(['|nodes,pods,services|list,watch', 'discovery.k8s.io|endpointslices|list,watch'].sort()),
      `RBAC least privilege, got ${JSON.stringify(rules)}`);

// The node agent: privileged, host network and pid, the paths it needs, the CNI installer.
const pod = ds.spec.template.spec;
check(pod.hostNetwork === true && pod.hostPID === true, 'DaemonSet hostNetwork + hostPID');
check(pod.containers.every((c) => c.securityContext.privileged === true), 'DaemonSet privileged');
const hostPaths = pod.volumes.filter((v) => v.hostPath).map((v) => v.hostPath.path).sort();
check(JSON.stringify(hostPaths) === JSON.stringify(['/etc/cni/net.d', '/opt/cni/bin', '/sys/fs/bpf', '/sys/fs/cgroup', '/var/run/rdmesh']),
      `DaemonSet hostPaths ${JSON.stringify(hostPaths)}`);
const installer = pod.containers.find((c) => c.name === 'install-cni');
check(installer && installer.command[0] === '/usr/local/bin/rdmesh-install-cni', 'install-cni container');
const nodeCm = find(o, 'ConfigMap', 'rdmesh-node');
const nodeYaml = YAML.parse(nodeCm.data['node.yaml']);
check(nodeYaml.fabric && nodeYaml.fabric.listen === '0.0.0.0:15008' && nodeYaml.socket === '/var/run/rdmesh/node.sock',
      'node.yaml: fabric on 15008, node.sock');
fs.writeFileSync(path.join(work, 'node.yaml'), nodeCm.data['node.yaml']);
const injection = YAML.parse(find(o, 'ConfigMap', 'rdmesh-injection').data['injection.yaml']);
check(injection.xdsAddress === 'rdmesh-xds.rdmesh-system.svc:15012' && injection.image === 'ghcr.io/rdmesh/rdmesh-proxy:0.1.0',
      'injection.yaml: xDS address and sidecar image');
fs.writeFileSync(path.join(work, 'injection.yaml'), find(o, 'ConfigMap', 'rdmesh-injection').data['injection.yaml']);

// NOTES tell the next step.
const notes = spawnSync(renderer, ['--notes', '--namespace', 'rdmesh-system', chart], {encoding: 'utf8'});
check(notes.stdout.includes('kubectl label namespace <namespace> rdmesh-injection=enabled') &&
      notes.stdout.includes('kubectl rollout restart deployment'), 'NOTES.txt: label and restart');

// ---- HA with etcd, own images, Fail
const ha = render(['--set', 'xds.replicas=3', '--set', 'xds.etcd.endpoints={https://etcd-0:2379,https://etcd-1:2379}',
                   '--set', 'images.registry=registry.example/mesh', '--set', 'images.tag=1.2.3',
                   '--set', 'webhook.failurePolicy=Fail', '--set', 'node.rdma=false']);
check(ha.status === 0, `HA render: ${ha.err}`);
fs.writeFileSync(path.join(work, 'ha.yaml'), ha.out);
check(spawnSync('node', [validator, path.join(work, 'ha.yaml')]).status === 0, 'HA objects valid');
const oh = objects(ha.out);
const hd = find(oh, 'Deployment', 'rdmesh-xds');
check(hd.spec.replicas === 3, 'replicas 3');
check(hd.spec.template.spec.containers[0].args.includes('--etcd-endpoints=https://etcd-0:2379,https://etcd-1:2379'), 'etcd endpoints');
check(hd.spec.template.spec.containers[0].image === 'registry.example/mesh/rdmesh-xds:1.2.3', 'own image');
check(oh.find((x) => x.kind === 'PodDisruptionBudget').spec.minAvailable === 1, 'PDB minAvailable 1 with replicas');
check(find(oh, 'MutatingWebhookConfiguration', 'rdmesh-sidecar-injector').webhooks[0].failurePolicy === 'Fail', 'Fail');
check(YAML.parse(find(oh, 'ConfigMap', 'rdmesh-node').data['node.yaml']).fabric.rdma === false, 'rdma off');

// ---- refused: HA without etcd, bad values
const noEtcd = render(['--set', 'xds.replicas=2']);
check(noEtcd.status !== 0 && noEtcd.err.includes('xds.replicas > 1 needs xds.etcd.endpoints'),
      `replicas 2 without etcd fails clearly: ${noEtcd.err}`);
for (const [set, expected] of [['xds.replicas=0', 'must be >= 1'], ['webhook.failurePolicy=Maybe', 'must be equal to one of the allowed values'],
                               ['images.pullPolicy=Sometimes', 'allowed values'], ['xds.colour=blue', "must NOT have additional properties ('colour')"],
                               ['sidecar.resources.requests.cpu=lots', 'must match pattern'], ['trustDomain=Not_A_Domain', 'must match pattern']]) {
  const r = valuesOk(['--set', set]);
  check(r.status !== 0 && r.stderr.includes(expected), `schema refuses ${set} (${expected}): ${r.stderr.trim()}`);
}
console.log(`${checks - failures}/${checks} chart checks passed`);
process.exit(failures ? 1 : 0);
