/** Checks a redis:// URL and says what is wrong with it; only redis:// and rediss:// are taken. */
export function parseRedisUrl(url: string): { host: string; port: number; db: number } {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new Error(`--queue ${url}: not a URL (expected redis://HOST:PORT/DB)`);
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:')
    throw new Error(`--queue ${url}: the scheme must be redis:// or rediss://, got ${parsed.protocol}//`);
  if (!parsed.hostname) throw new Error(`--queue ${url}: no host (expected redis://HOST:PORT/DB)`);
  const port = parsed.port === '' ? 6379 : Number(parsed.port);
  const path = parsed.pathname.replace(/^\//, '');
  if (path !== '' && !/^\d+$/.test(path))
    throw new Error(`--queue ${url}: the database must be a number (redis://HOST:PORT/DB), got '${path}'`);
  return { host: parsed.hostname, port, db: path === '' ? 0 : Number(path) };
}
