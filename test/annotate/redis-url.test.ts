import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { parseRedisUrl } from '../../src/annotate/redis-url.js';

describe('parseRedisUrl', () => {
  it('reads host, port (6379 by default) and database (0 by default)', () => {
    assert.deepEqual(parseRedisUrl('redis://127.0.0.1:6380/2'), { host: '127.0.0.1', port: 6380, db: 2 });
    assert.deepEqual(parseRedisUrl('redis://queue.local'), { host: 'queue.local', port: 6379, db: 0 });
    assert.deepEqual(parseRedisUrl('rediss://h:7000/'), { host: 'h', port: 7000, db: 0 });
  });

  it('names what is wrong with a URL it cannot use', () => {
    assert.throws(
      () => parseRedisUrl('localhost:6379'),
      /--queue localhost:6379: the scheme must be redis:\/\/ or rediss:\/\/, got localhost:\/\//,
    );
    assert.throws(
      () => parseRedisUrl('not a url'),
      /--queue not a url: not a URL \(expected redis:\/\/HOST:PORT\/DB\)/,
    );
    assert.throws(() => parseRedisUrl('http://h:1/0'), /the scheme must be redis:\/\/ or rediss:\/\/, got http:\/\//);
    assert.throws(
      () => parseRedisUrl('redis://h:1/queue'),
      /the database must be a number \(redis:\/\/HOST:PORT\/DB\), got 'queue'/,
    );
  });
});
