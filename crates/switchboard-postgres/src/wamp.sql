-- Switchboard's helper schema for the PostgreSQL bridge (`switchboard postgres sql` prints it;
-- a component with "install_schema": true applies it at start). Safe to run again: it creates
-- what is missing and replaces the functions.

CREATE SCHEMA IF NOT EXISTS wamp;
GRANT USAGE ON SCHEMA wamp TO PUBLIC;

-- Who is calling: the bridge sets these for the one transaction of each call.
CREATE OR REPLACE FUNCTION wamp.authid() RETURNS text
  LANGUAGE sql STABLE AS $$ SELECT nullif(current_setting('wamp.authid', true), '') $$;
CREATE OR REPLACE FUNCTION wamp.authrole() RETURNS text
  LANGUAGE sql STABLE AS $$ SELECT nullif(current_setting('wamp.authrole', true), '') $$;
CREATE OR REPLACE FUNCTION wamp.session() RETURNS bigint
  LANGUAGE sql STABLE AS $$ SELECT nullif(current_setting('wamp.session', true), '')::bigint $$;
CREATE OR REPLACE FUNCTION wamp.caller() RETURNS jsonb
  LANGUAGE sql STABLE AS $$ SELECT nullif(current_setting('wamp.caller', true), '')::jsonb $$;

-- An application error: the caller gets `uri` as the WAMP error, with `args` and `kwargs`.
CREATE OR REPLACE FUNCTION wamp.raise(uri text, args jsonb DEFAULT NULL, kwargs jsonb DEFAULT NULL)
  RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION USING ERRCODE = 'WA000', MESSAGE = uri,
    DETAIL = jsonb_build_object('args', coalesce(args, '[]'::jsonb),
                                'kwargs', coalesce(kwargs, '{}'::jsonb))::text;
END $$;

-- Publishing: each event gets a number, so that NOTIFY never folds two equal events of one
-- transaction into one, and events too large for NOTIFY wait in event_buffer for the bridge.
CREATE SEQUENCE IF NOT EXISTS wamp.publish_seq;
CREATE TABLE IF NOT EXISTS wamp.event_buffer (
  seq bigint PRIMARY KEY,
  channel text NOT NULL DEFAULT 'wamp_publish',
  payload text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
-- The bridge's login role takes large events from here:
--   GRANT SELECT, DELETE ON wamp.event_buffer TO <the bridge's login role>;

-- The outbox tier: events wait here until the publishing bridge has handed them to the router,
-- and only then are deleted, so none is lost while the bridge or the database is away
-- (at-least-once: one published just before a bridge died is published again). The bridge's
-- login role reads and deletes:
--   GRANT SELECT, DELETE ON wamp.outbox TO <the bridge's login role>;
CREATE TABLE IF NOT EXISTS wamp.outbox (
  seq bigint PRIMARY KEY,
  channel text NOT NULL DEFAULT 'wamp_publish',
  topic text NOT NULL,
  args jsonb,
  kwargs jsonb,
  options jsonb,
  published_by text NOT NULL DEFAULT session_user,
  authid text,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS outbox_channel_seq ON wamp.outbox (channel, seq);

-- Where a subscriber's `"insert": "wamp.inbox"` puts events. The bridge's login role inserts:
--   GRANT INSERT ON wamp.inbox TO <the bridge's login role>;
CREATE TABLE IF NOT EXISTS wamp.inbox (
  id bigserial PRIMARY KEY,
  topic text NOT NULL,
  args jsonb,
  kwargs jsonb,
  details jsonb,
  received_at timestamptz NOT NULL DEFAULT now()
);

-- Publishes an event when the transaction commits (nothing when it rolls back). The channel is
-- `wamp_publish`, or the setting `wamp.publish_channel` where the database sets one. The tier is
-- the setting `wamp.publish_mode`: `notify` (the default), `outbox` or `durable`, for a bridge
-- whose publisher has that mode (ALTER DATABASE <db> SET wamp.publish_mode = 'outbox').
-- wamp.publish_outbox and wamp.publish_durable always take their tier.
-- The durable tier writes a logical decoding message (prefix `wamp:<channel>`) into the WAL,
-- which the bridge reads through its replication slot: any size, no table, no NOTIFY.
CREATE OR REPLACE FUNCTION wamp.publish(topic text, args jsonb DEFAULT NULL,
                                        kwargs jsonb DEFAULT NULL, options jsonb DEFAULT NULL)
  RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER SET search_path = wamp, pg_temp AS $$
DECLARE
  n bigint;
  payload text;
  channel text := coalesce(nullif(current_setting('wamp.publish_channel', true), ''), 'wamp_publish');
BEGIN
  IF topic IS NULL OR topic = '' OR topic LIKE 'wamp.%' THEN
    RAISE EXCEPTION 'wamp.publish: invalid topic %', coalesce(topic, 'NULL') USING ERRCODE = '22023';
  END IF;
  IF args IS NOT NULL AND jsonb_typeof(args) <> 'array' THEN
    RAISE EXCEPTION 'wamp.publish: args must be a JSON array' USING ERRCODE = '22023';
  END IF;
  IF kwargs IS NOT NULL AND jsonb_typeof(kwargs) <> 'object' THEN
    RAISE EXCEPTION 'wamp.publish: kwargs must be a JSON object' USING ERRCODE = '22023';
  END IF;
  IF options IS NOT NULL AND jsonb_typeof(options) <> 'object' THEN
    RAISE EXCEPTION 'wamp.publish: options must be a JSON object' USING ERRCODE = '22023';
  END IF;
  n := nextval('wamp.publish_seq');
  IF current_setting('wamp.publish_mode', true) = 'durable' THEN
    PERFORM pg_logical_emit_message(true, 'wamp:' || channel,
      jsonb_build_object('v', 1, 'seq', n, 'topic', topic,
                         'args', coalesce(args, '[]'::jsonb),
                         'kwargs', coalesce(kwargs, '{}'::jsonb),
                         'options', coalesce(options, '{}'::jsonb),
                         'by', session_user::text, 'authid', wamp.authid())::text);
    RETURN n;
  END IF;
  IF current_setting('wamp.publish_mode', true) = 'outbox' THEN
    INSERT INTO wamp.outbox (seq, channel, topic, args, kwargs, options, published_by, authid)
      VALUES (n, channel, topic, args, kwargs, options, session_user, wamp.authid());
    -- A doorbell: the bridge reads the outbox. NOTIFY folds the equal ones of one transaction.
    PERFORM pg_notify(channel, '');
    RETURN n;
  END IF;
  payload := jsonb_build_object('v', 1, 'seq', n, 'topic', topic,
                                'args', coalesce(args, '[]'::jsonb),
                                'kwargs', coalesce(kwargs, '{}'::jsonb),
                                'options', coalesce(options, '{}'::jsonb),
                                'by', session_user::text, 'authid', wamp.authid())::text;
  -- NOTIFY takes payloads shorter than 8000 bytes.
  IF octet_length(payload) >= 7900 THEN
    INSERT INTO wamp.event_buffer (seq, channel, payload) VALUES (n, channel, payload);
    payload := jsonb_build_object('v', 1, 'seq', n, 'ref', n)::text;
  END IF;
  PERFORM pg_notify(channel, payload);
  RETURN n;
END $$;

CREATE OR REPLACE FUNCTION wamp.publish_outbox(topic text, args jsonb DEFAULT NULL,
                                               kwargs jsonb DEFAULT NULL, options jsonb DEFAULT NULL)
  RETURNS bigint LANGUAGE sql SECURITY DEFINER SET search_path = wamp, pg_temp
  SET wamp.publish_mode = 'outbox' AS $$ SELECT wamp.publish(topic, args, kwargs, options) $$;

CREATE OR REPLACE FUNCTION wamp.publish_durable(topic text, args jsonb DEFAULT NULL,
                                                kwargs jsonb DEFAULT NULL, options jsonb DEFAULT NULL)
  RETURNS bigint LANGUAGE sql SECURITY DEFINER SET search_path = wamp, pg_temp
  SET wamp.publish_mode = 'durable' AS $$ SELECT wamp.publish(topic, args, kwargs, options) $$;

-- The durable tier's bridge streams its slot with this publication, which lists no table: the
-- stream carries only the logical messages of wamp.publish, no row changes. Made where the
-- server has wal_level=logical, which the durable tier needs (run this again after turning it
-- on, or CREATE PUBLICATION switchboard).
DO $$
BEGIN
  IF current_setting('wal_level') = 'logical'
     AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_publication WHERE pubname = 'switchboard') THEN
    CREATE PUBLICATION switchboard;
  END IF;
END $$;

-- Every role may use the helpers (also where ALTER DEFAULT PRIVILEGES revoked PUBLIC's EXECUTE
-- before this ran): the identity helpers in row-level security policies, wamp.raise in
-- functions, wamp.publish in functions and triggers. In the notify tier any role that can
-- connect may NOTIFY anyway; revoke wamp.publish from PUBLIC to grant it per role instead.
GRANT EXECUTE ON FUNCTION wamp.authid(), wamp.authrole(), wamp.session(), wamp.caller(),
  wamp.raise(text, jsonb, jsonb), wamp.publish(text, jsonb, jsonb, jsonb),
  wamp.publish_outbox(text, jsonb, jsonb, jsonb), wamp.publish_durable(text, jsonb, jsonb, jsonb) TO PUBLIC;
