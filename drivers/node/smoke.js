// node-postgres smoke suite: what an application does on connect and in a typical session.
//
// Run by cli/tests/e2e/drivers.rs, twice: against a fresh PostgreSQL database and against a fresh
// `strata up`, with STRATA_DRIVERS_DATABASE_URL and STRATA_DRIVERS_TARGET ("postgres" or
// "strata"), and NODE_PATH pointing at the node_modules ./scripts/test installed from
// package-lock.json. Steps Strata cannot do yet are declared with `gap(...)`: on Strata they must
// fail with the given SQLSTATE (and start failing the suite the day they work); on PostgreSQL
// they run as ordinary tests.
'use strict';

process.env.TZ = 'UTC';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const pg = require('pg');

const url = process.env.STRATA_DRIVERS_DATABASE_URL;
const target = process.env.STRATA_DRIVERS_TARGET;
if (!url || !['postgres', 'strata'].includes(target)) {
  console.error('STRATA_DRIVERS_DATABASE_URL and STRATA_DRIVERS_TARGET must be set: ' +
    "run ./scripts/test -E 'test(drivers)'");
  process.exit(2);
}
const onStrata = target === 'strata';

// A step PostgreSQL passes and Strata does not yet: on Strata it must fail with error code
// `expected` (a SQLSTATE, or ERR_ASSERTION for a check of this suite that does not hold).
function gap(name, reason, expected, fn) {
  if (!onStrata) {
    test(name, fn);
    return;
  }
  test(`${name} [Strata gap: ${reason}]`, async (t) => {
    let error = null;
    try {
      await fn(t);
    } catch (e) {
      error = e;
    }
    assert.ok(error, `works on Strata now: remove the gap mark (${reason})`);
    assert.equal(error.code, expected, `failed otherwise than expected: ${error.stack}`);
  });
}

const CREATE_TABLE = `
CREATE TABLE smoke (
    id integer PRIMARY KEY,
    big bigint NOT NULL,
    amount numeric(10,2),
    note text,
    code varchar(16),
    flag boolean,
    day date,
    at timestamp,
    at_tz timestamptz,
    payload bytea,
    ratio double precision,
    token uuid
)`;
const COLUMNS = ['id', 'big', 'amount', 'note', 'code', 'flag', 'day', 'at', 'at_tz', 'payload', 'ratio', 'token'];
const OIDS = [23, 20, 1700, 25, 1043, 16, 1082, 1114, 1184, 17, 701, 2950];
const INSERT = `INSERT INTO smoke (${COLUMNS.join(', ')}) VALUES (${COLUMNS.map((_, i) => `$${i + 1}`).join(', ')})`;

// What the application binds, and what node-postgres gives back (int8 and numeric as strings,
// date and timestamps as Date in the process time zone, which is UTC here).
const ROWS = [
  {
    bind: [1, '1099511627783', '12345678.90', 'hello', 'v1', true, '2024-02-29',
      '2024-02-29 12:34:56.123456', new Date('2024-02-29T12:34:56.654Z'),
      Buffer.from([0, 1, 0xfe, 0xff]), 1.5, 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'],
    read: [1, '1099511627783', '12345678.90', 'hello', 'v1', true, new Date('2024-02-29T00:00:00Z'),
      new Date('2024-02-29T12:34:56.123Z'), new Date('2024-02-29T12:34:56.654Z'),
      Buffer.from([0, 1, 0xfe, 0xff]), 1.5, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'],
  },
  {
    bind: [2, '-4611686018427387904', '-0.01', "ünïcödé ✓ 'quoted' \\ back", '', false, '1999-12-31',
      '1999-12-31 23:59:59', '2000-01-01 01:00:00+02', Buffer.alloc(0), -2.5e-300,
      '00000000-0000-0000-0000-000000000000'],
    read: [2, '-4611686018427387904', '-0.01', "ünïcödé ✓ 'quoted' \\ back", '', false,
      new Date('1999-12-31T00:00:00Z'), new Date('1999-12-31T23:59:59Z'),
      new Date('1999-12-31T23:00:00Z'), Buffer.alloc(0), -2.5e-300,
      '00000000-0000-0000-0000-000000000000'],
  },
  {
    bind: [3, 0, null, null, null, null, null, null, null, null, null, null],
    read: [3, '0', null, null, null, null, null, null, null, null, null, null],
  },
];

let pool;
before(() => {
  pool = new pg.Pool({ connectionString: url, max: 4 });
});
after(async () => {
  await pool.end();
});

async function scalar(sql, values) {
  const res = await pool.query({ text: sql, values, rowMode: 'array' });
  return res.rows[0][0];
}

test('connect', async () => {
  const client = new pg.Client({ connectionString: url });
  const parameters = {};
  client.connection.on('parameterStatus', (m) => { parameters[m.parameterName] = m.parameterValue; });
  await client.connect();
  try {
    assert.match(parameters.server_version, /^1[5-9]/);
    assert.equal(parameters.client_encoding, 'UTF8');
    const res = await client.query('SELECT 1 AS one');
    assert.equal(Number(res.rows[0].one), 1);
    assert.deepEqual((await client.query('SHOW transaction_isolation')).rows, [{ transaction_isolation: 'read committed' }]);
  } finally {
    await client.end();
  }
});

test('create table', async () => {
  await pool.query(CREATE_TABLE);
  await pool.query('CREATE TABLE accounts (id integer PRIMARY KEY, owner text NOT NULL, balance bigint)');
});

test('insert with bound parameters', async () => {
  for (const row of ROWS) {
    const res = await pool.query(INSERT, row.bind);
    assert.equal(res.rowCount, 1);
    assert.equal(res.command, 'INSERT');
  }
  assert.equal(await scalar('SELECT count(*) FROM smoke'), String(ROWS.length));
});

test('select values and types', async () => {
  const res = await pool.query({ text: `SELECT ${COLUMNS.join(', ')} FROM smoke ORDER BY id`, rowMode: 'array' });
  assert.deepEqual(res.fields.map((f) => f.name), COLUMNS);
  assert.deepEqual(res.fields.map((f) => f.dataTypeID), OIDS);
  assert.deepEqual(res.rows, ROWS.map((r) => r.read));
  assert.equal(await scalar('SELECT note FROM smoke WHERE id = $1', [2]), ROWS[1].read[3]);
  const big = await pool.query('SELECT id FROM smoke WHERE big > $1 ORDER BY id', [0]);
  assert.deepEqual(big.rows, [{ id: 1 }]);
  const byObject = await pool.query('SELECT * FROM smoke WHERE id = $1', [1]);
  assert.deepEqual(byObject.rows[0].payload, ROWS[0].read[9]);
});

test('an integer literal is an int4', async () => {
  const res = await pool.query({ text: 'SELECT 1, 3000000000', rowMode: 'array' });
  assert.deepEqual(res.fields.map((f) => f.dataTypeID), [23, 20]);
  assert.deepEqual(res.rows[0], [1, '3000000000']);
});

test('result type of a bigint sum', async () => {
  const res = await pool.query({ text: 'SELECT sum(big) FROM smoke', rowMode: 'array' });
  assert.deepEqual(res.fields.map((f) => f.dataTypeID), [1700]);
  assert.deepEqual(res.rows[0], [String(ROWS.reduce((s, r) => s + BigInt(r.bind[1]), 0n))]);
});

test('result types of aggregates', async () => {
  const res = await pool.query({
    text: 'SELECT (SELECT avg(id) FROM smoke WHERE id <= 2), (SELECT sum(id) FROM smoke)', rowMode: 'array',
  });
  assert.deepEqual(res.fields.map((f) => f.dataTypeID), [1700, 20]);
  assert.deepEqual(res.rows[0], ['1.5000000000000000', '6']);
});

test('arrays and intervals', async () => {
  await pool.query('CREATE TABLE tagged (id integer PRIMARY KEY, nums int[], tags text[], span interval)');
  // node-postgres sends a JS array as an array literal ('{"1","2"}') and parses int4[] and text[]
  // results back into arrays.
  await pool.query('INSERT INTO tagged VALUES ($1, $2, $3, $4)', [1, [1, 2, null], ['a', 'b c', ''], '1 day 02:03:04']);
  const res = await pool.query({ text: 'SELECT nums, tags, span FROM tagged WHERE id = $1', values: [1], rowMode: 'array' });
  assert.deepEqual(res.fields.map((f) => f.dataTypeID), [1007, 1009, 1186]);
  const [nums, tags, span] = res.rows[0];
  assert.deepEqual(nums, [1, 2, null]);
  assert.deepEqual(tags, ['a', 'b c', '']);
  assert.deepEqual({ days: span.days, hours: span.hours, minutes: span.minutes, seconds: span.seconds },
    { days: 1, hours: 2, minutes: 3, seconds: 4 });
  assert.equal(await scalar('SELECT id FROM tagged WHERE $1 = ANY(tags)', ['b c']), 1);
});

test('update and delete with parameters', async () => {
  let res = await pool.query('UPDATE smoke SET note = $1, amount = amount + $2 WHERE id = $3', ['changed', 1, 1]);
  assert.equal(res.rowCount, 1);
  res = await pool.query('SELECT note, amount FROM smoke WHERE id = 1');
  assert.deepEqual(res.rows[0], { note: 'changed', amount: '12345679.90' });
  assert.equal((await pool.query('DELETE FROM smoke WHERE id = $1', [3])).rowCount, 1);
  assert.equal((await pool.query('DELETE FROM smoke WHERE id = $1', [3])).rowCount, 0);
  res = await pool.query('UPDATE smoke SET flag = NOT flag WHERE id = $1 RETURNING flag', [2]);
  assert.deepEqual(res.rows, [{ flag: true }]);
});

test('transaction commits', async () => {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await client.query('INSERT INTO accounts VALUES ($1, $2, $3)', [1, 'alice', 100]);
    await client.query('INSERT INTO accounts VALUES ($1, $2, $3)', [2, 'bob', 50]);
    await client.query('COMMIT');
  } finally {
    client.release();
  }
  assert.equal(await scalar('SELECT sum(balance) FROM accounts'), '150');
});

test('transaction rolls back', async () => {
  const client = await pool.connect();
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
    await client.query('UPDATE accounts SET balance = balance - $1 WHERE id = $2', [30, 1]);
    await client.query('INSERT INTO accounts VALUES ($1, $2, $3)', [3, 'carol', 1]);
    assert.equal((await client.query('SELECT balance FROM accounts WHERE id = 1')).rows[0].balance, '70');
    await client.query('ROLLBACK');
  } finally {
    client.release();
  }
  assert.equal(await scalar('SELECT balance FROM accounts WHERE id = 1'), '100');
  assert.equal(await scalar('SELECT count(*) FROM accounts WHERE id = 3'), '0');
});

test('savepoints', async () => {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await client.query('INSERT INTO accounts VALUES ($1, $2, $3)', [4, 'dave', 4]);
    await client.query('SAVEPOINT s1');
    await client.query('INSERT INTO accounts VALUES ($1, $2, $3)', [5, 'erin', 5]);
    await assert.rejects(client.query('INSERT INTO accounts VALUES ($1, $2, $3)', [1, 'again', 0]), { code: '23505' });
    await client.query('ROLLBACK TO SAVEPOINT s1');
    await client.query('COMMIT');
  } finally {
    client.release();
  }
  const res = await pool.query('SELECT id FROM accounts WHERE id >= 4 ORDER BY id');
  assert.deepEqual(res.rows, [{ id: 4 }]);
});

test('duplicate key sqlstate', async () => {
  await assert.rejects(pool.query('INSERT INTO accounts VALUES ($1, $2, $3)', [1, 'mallory', 0]), { code: '23505' });
  assert.equal(await scalar('SELECT owner FROM accounts WHERE id = $1', [1]), 'alice');
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await assert.rejects(client.query('INSERT INTO accounts VALUES ($1, $2, $3)', [2, 'mallory', 0]), { code: '23505' });
    await assert.rejects(client.query('SELECT 1'), { code: '25P02' });
    await client.query('ROLLBACK');
    assert.equal((await client.query('SELECT 1 AS x')).rows.length, 1);
  } finally {
    client.release();
  }
});

test('duplicate key names the constraint', async () => {
  const error = await pool.query('INSERT INTO accounts VALUES ($1, $2, $3)', [1, 'mallory', 0]).then(
    () => assert.fail('no error'), (e) => e);
  assert.equal(error.code, '23505');
  assert.equal(error.constraint, 'accounts_pkey');
  assert.equal(error.table, 'accounts');
});

test('syntax error sqlstate', async () => {
  await assert.rejects(pool.query('SELEC 1'), { code: '42601' });
  await assert.rejects(pool.query('SELECT * FROM no_such_table'), { code: '42P01' });
  // The same, through the extended protocol (a query with parameters).
  await assert.rejects(pool.query('SELEC $1', [1]), { code: '42601' });
  assert.equal(Number(await scalar('SELECT 2')), 2);
});

test('prepared statement reuse', async () => {
  const client = await pool.connect();
  try {
    const select = { name: 'account-by-id', text: 'SELECT owner, balance FROM accounts WHERE id = $1' };
    for (let i = 0; i < 3; i++) {
      assert.deepEqual((await client.query({ ...select, values: [1] })).rows, [{ owner: 'alice', balance: '100' }]);
      assert.deepEqual((await client.query({ ...select, values: [2] })).rows, [{ owner: 'bob', balance: '50' }]);
    }
    const insert = { name: 'insert-account', text: 'INSERT INTO accounts VALUES ($1, $2, $3)' };
    for (let i = 10; i < 20; i++) {
      await client.query({ ...insert, values: [i, `user${i}`, i] });
    }
    assert.equal((await client.query('SELECT count(*) AS n FROM accounts WHERE id >= 10')).rows[0].n, '10');
    for (let i = 10; i < 20; i++) {
      assert.deepEqual((await client.query({ ...select, values: [i] })).rows, [{ owner: `user${i}`, balance: String(i) }]);
    }
  } finally {
    client.release();
  }
});

test('prepared statements are server side', async () => {
  const client = await pool.connect();
  try {
    await client.query({ name: 'owner-by-id', text: 'SELECT owner FROM accounts WHERE id = $1', values: [1] });
    const res = await client.query("SELECT count(*) AS n FROM pg_prepared_statements WHERE name = 'owner-by-id'");
    assert.equal(res.rows[0].n, '1');
  } finally {
    client.release();
  }
});
