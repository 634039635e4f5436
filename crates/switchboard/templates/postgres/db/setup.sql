-- The database side of {{ appname }}: run once, as a role that may create roles and schemas
-- (psql -d {{ appname }} -f db/setup.sql). It creates:
--   the `wamp` helper schema (db/wamp.sql: wamp.publish, wamp.authid, ...);
--   {{ appname }}_bridge, the role the node logs in as (password in .crossbar/config.json),
--   which switches to {{ appname }}_web for the calls of anonymous WAMP clients;
--   the `api` schema, whose functions the node registers as com.example.api.<name>;
--   a todos table whose trigger publishes every new row on com.example.todo.on_insert.

\ir wamp.sql

CREATE ROLE {{ appname }}_bridge LOGIN NOINHERIT PASSWORD 'change-me';
CREATE ROLE {{ appname }}_web NOLOGIN;
GRANT {{ appname }}_web TO {{ appname }}_bridge;
GRANT SELECT, DELETE ON wamp.event_buffer TO {{ appname }}_bridge;

-- Functions are EXECUTE-able by everyone unless revoked; grant them one by one instead.
ALTER DEFAULT PRIVILEGES REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;

CREATE SCHEMA api;
GRANT USAGE ON SCHEMA api TO {{ appname }}_web;

CREATE TABLE todos (
  id serial PRIMARY KEY,
  task text NOT NULL CHECK (task <> ''),
  owner text DEFAULT wamp.authid(),
  created timestamptz NOT NULL DEFAULT now()
);
GRANT SELECT, INSERT ON todos TO {{ appname }}_web;
GRANT USAGE ON SEQUENCE todos_id_seq TO {{ appname }}_web;

-- com.example.api.add2(2, 3) = 5
CREATE FUNCTION api.add2(a int, b int) RETURNS int
  LANGUAGE sql IMMUTABLE AS $$ SELECT a + b $$;

-- com.example.api.add_todo(task) inserts a row (as the caller: owner is their WAMP authid).
CREATE FUNCTION api.add_todo(task text) RETURNS todos
  LANGUAGE sql AS $$ INSERT INTO todos (task) VALUES (task) RETURNING * $$;

-- com.example.api.todos() lists them, newest first.
CREATE FUNCTION api.todos() RETURNS SETOF todos
  LANGUAGE sql STABLE AS $$ SELECT * FROM todos ORDER BY id DESC LIMIT 50 $$;

GRANT EXECUTE ON FUNCTION api.add2(int, int), api.add_todo(text), api.todos() TO {{ appname }}_web;

-- Every new row, whoever inserts it (the page, psql, another program), is an event.
CREATE FUNCTION todos_published() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM wamp.publish('com.example.todo.on_insert', jsonb_build_array(to_jsonb(NEW)));
  RETURN NEW;
END $$;
CREATE TRIGGER todos_published AFTER INSERT ON todos
  FOR EACH ROW EXECUTE FUNCTION todos_published();
