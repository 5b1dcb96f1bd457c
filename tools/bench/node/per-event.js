#!/usr/bin/env node
// per-event.js -- the benchmark's per-event baseline as this clinic's
// Node.js team would write it: kafkajs reads the CDC topics, pg runs
// baseline.sql's statement of each event in its own transaction
// (autocommit), kafkajs commits the offsets (docs/performance.md).
//
// Usage: node per-event.js --bootstrap B --topics T1,T2,T3 --group G
//                          --db URI --expect N --out FILE
//
// It stops once it has read --expect messages (tombstones included) and
// writes the same JSON object as baseline.py: messages, applied, stale,
// tombstones, the first assignment and last commit times (seconds since
// the epoch), the latencies' p50 and p99, their count and its peak RSS
// (VmHWM). No row data is printed or written.
'use strict';

const fs = require('fs');
const path = require('path');
const { Kafka, logLevel } = require('kafkajs');
const { Client } = require('pg');

const COLUMNS = {
  User: ['id', 'clinicId', 'email', 'phone', 'firstName', 'lastName', 'role',
    'specialization', 'licenseNumber', 'isActive', 'createdAt', 'updatedAt'],
  Patient: ['id', 'clinicId', 'firstName', 'lastName', 'middleName',
    'birthDate', 'gender', 'phone', 'email', 'createdAt', 'updatedAt'],
  Appointment: ['id', 'clinicId', 'doctorId', 'patientId', 'startsAt',
    'endsAt', 'status', 'reason', 'createdAt', 'updatedAt'],
};

function args(argv) {
  const out = {};
  for (let i = 2; i < argv.length; i += 2) {
    if (!argv[i].startsWith('--') || i + 1 >= argv.length) {
      throw new Error(`bad argument ${argv[i]}`);
    }
    out[argv[i].slice(2)] = argv[i + 1];
  }
  for (const k of ['bootstrap', 'topics', 'group', 'db', 'expect', 'out']) {
    if (!(k in out)) throw new Error(`--${k} is required`);
  }
  return out;
}

// {table: SQL} from baseline.sql's "-- table: NAME" sections
function statements() {
  const text = fs.readFileSync(path.join(__dirname, '..', 'baseline.sql'),
    'utf8');
  const parts = text.split(/^-- table: (\w+)\s*$/m);
  const out = {};
  for (let i = 1; i < parts.length; i += 2) out[parts[i]] = parts[i + 1].trim();
  return out;
}

// the statement's parameters of one message, or null for a tombstone
function params(table, topic, partition, offset, key, value) {
  if (value === null) return null;
  let env = JSON.parse(value.toString());
  if (env.schema && env.payload && typeof env.payload === 'object') {
    env = env.payload;
  }
  const src = env.source || {};
  let row;
  if (env.op === 'd') {
    let id = env.before && env.before.id;
    if (id === undefined || id === null) {
      const k = JSON.parse(key.toString());
      id = (k.payload || k).id;
    }
    row = [id].concat(COLUMNS[table].slice(1).map(() => null));
  } else {
    row = COLUMNS[table].map((c) => (c in env.after ? env.after[c] : null));
  }
  return row.concat([env.op === 'd', src.lsn, src.txId, env.op === 'r',
    topic, partition, offset]);
}

// latencies in buckets 1 % wide, as baseline.py's Histogram
class Histogram {
  constructor() { this.buckets = new Map(); this.count = 0; }

  add(seconds) {
    const b = Math.floor(Math.log(Math.max(seconds, 1e-7) * 1e7) /
      Math.log(1.01));
    this.buckets.set(b, (this.buckets.get(b) || 0) + 1);
    this.count++;
  }

  percentile(q) {
    if (!this.count) return null;
    const rank = Math.max(1, Math.ceil(q * this.count));
    let seen = 0;
    for (const b of [...this.buckets.keys()].sort((x, y) => x - y)) {
      seen += this.buckets.get(b);
      if (seen >= rank) return Math.exp((b + 0.5) * Math.log(1.01)) / 1e7 * 1000;
    }
    return null;
  }
}

async function main() {
  const a = args(process.argv);
  const expect = Number(a.expect);
  const sql = statements();
  const db = new Client({ connectionString: a.db }); // a postgresql:// URI
  await db.connect();

  const kafka = new Kafka({
    clientId: 'bench-node', brokers: a.bootstrap.split(','),
    logLevel: logLevel.WARN,
  });
  const consumer = kafka.consumer({
    groupId: a.group, sessionTimeout: 6000, heartbeatInterval: 500,
  });
  const r = {
    mode: 'node', messages: 0, tombstones: 0, applied: 0, stale: 0,
    assigned_at: null, last_commit_at: null,
  };
  const latency = new Histogram();
  consumer.on(consumer.events.GROUP_JOIN, () => {
    if (r.assigned_at === null) r.assigned_at = Date.now() / 1000;
  });
  let finish;
  const finished = new Promise((resolve) => { finish = resolve; });
  await consumer.connect();
  await consumer.subscribe({ topics: a.topics.split(','), fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ topic, partition, message }) => {
      if (r.messages >= expect) return;
      r.messages++;
      const table = topic.split('.').pop();
      const p = params(table, topic, partition, Number(message.offset),
        message.key, message.value);
      if (p === null) {
        r.tombstones++;
      } else {
        const t = process.hrtime.bigint();
        const res = await db.query(sql[table], p);
        latency.add(Number(process.hrtime.bigint() - t) / 1e9);
        r.last_commit_at = Date.now() / 1000;
        const changed = Number(res.rows[0].count);
        r.applied += changed;
        r.stale += 1 - changed;
      }
      if (r.messages === expect) finish();
    },
  });
  const timeout = setTimeout(() => {
    console.error(`per-event.js: ${r.messages} of ${expect} messages read`);
    process.exit(1);
  }, Number(a.timeout || 3600) * 1000);
  await finished;
  clearTimeout(timeout);
  await consumer.disconnect(); // commits the offsets read
  await db.end();
  r.batches = latency.count;
  r.latency_ms_p50 = latency.percentile(0.5);
  r.latency_ms_p99 = latency.percentile(0.99);
  // peak RSS (VmHWM); process.resourceUsage().maxRSS counts the memory
  // of the parent copied by the fork before exec()
  const hwm = /^VmHWM:\s+(\d+)/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
  r.vm_hwm_kib = hwm ? Number(hwm[1]) : null;
  fs.writeFileSync(a.out, JSON.stringify(r));
}

main().catch((e) => {
  console.error(`per-event.js: ${e.message}`);
  process.exit(1);
});
