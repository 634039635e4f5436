-- Crossbar's `crossbar.publish` (its 2016 PostgreSQL publisher), for configs with the component
-- `crossbar.adapter.postgres.PostgreSQLPublisher`. As with Crossbar, the schema `crossbar` must
-- exist, owned by the bridge's login role, and the bridge installs the function into it at
-- start. Events go out on the channel `crossbar_publish` when the transaction commits, each
-- with a number of its own (so that NOTIFY does not fold two equal events of one transaction
-- into one, which Crossbar's did).

CREATE SEQUENCE IF NOT EXISTS crossbar.publish_seq;

CREATE OR REPLACE FUNCTION crossbar.publish(topic text, args jsonb DEFAULT NULL,
                                            kwargs jsonb DEFAULT NULL, options jsonb DEFAULT NULL,
                                            autonomous boolean DEFAULT false)
  RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER SET search_path = crossbar, pg_temp AS $$
DECLARE
  n bigint;
  payload text;
BEGIN
  IF topic IS NULL OR topic = '' OR topic LIKE 'wamp.%' OR topic LIKE 'crossbar.%'
     OR topic LIKE 'io.crossbar.%' THEN
    RAISE EXCEPTION 'crossbar.publish: invalid topic %', coalesce(topic, 'NULL') USING ERRCODE = '22023';
  END IF;
  IF autonomous THEN
    RAISE EXCEPTION 'crossbar.publish: autonomous publishing is not supported: events are published on commit'
      USING ERRCODE = '0A000';
  END IF;
  IF args IS NOT NULL AND jsonb_typeof(args) <> 'array' THEN
    RAISE EXCEPTION 'crossbar.publish: args must be a JSON array' USING ERRCODE = '22023';
  END IF;
  IF kwargs IS NOT NULL AND jsonb_typeof(kwargs) <> 'object' THEN
    RAISE EXCEPTION 'crossbar.publish: kwargs must be a JSON object' USING ERRCODE = '22023';
  END IF;
  IF options IS NOT NULL AND (jsonb_typeof(options) <> 'object'
     OR EXISTS (SELECT 1 FROM jsonb_object_keys(options) k WHERE k NOT IN ('exclude', 'eligible', 'acknowledge'))) THEN
    RAISE EXCEPTION 'crossbar.publish: options may hold exclude, eligible and acknowledge only' USING ERRCODE = '22023';
  END IF;
  n := nextval('crossbar.publish_seq');
  payload := jsonb_build_object('v', 1, 'seq', n, 'topic', topic,
                                'args', coalesce(args, '[]'::jsonb),
                                'kwargs', coalesce(kwargs, '{}'::jsonb),
                                'options', coalesce(options, '{}'::jsonb) - 'acknowledge',
                                'by', session_user::text)::text;
  -- As Crossbar's: NOTIFY takes less than 8000 bytes (wamp.publish takes larger events).
  IF octet_length(payload) >= 7900 THEN
    RAISE EXCEPTION 'crossbar.publish: the event is too large for NOTIFY (% bytes); wamp.publish takes it', octet_length(payload)
      USING ERRCODE = '54000';
  END IF;
  PERFORM pg_notify('crossbar_publish', payload);
  RETURN n;
END $$;

GRANT USAGE ON SCHEMA crossbar TO PUBLIC;
GRANT EXECUTE ON FUNCTION crossbar.publish(text, jsonb, jsonb, jsonb, boolean) TO PUBLIC;
