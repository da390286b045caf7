-- TEST-ONLY stand-in for pg_net. Never deployed.
-- Same SQL surface as pg_net for what our code uses: net.http_post / net.http_get only
-- queue a row in net.http_request_queue and return its id; the request becomes visible
-- (and is sent) only after the calling transaction commits. A sender process
-- (tests/platform/net-sender.ts, started by `npm start` and the end-to-end test) takes
-- queued rows, performs the HTTP call with the row's timeout and no retries, and
-- records the outcome in net._http_response, as pg_net's background worker does.

create schema if not exists net;

create unlogged table net.http_request_queue (
  id bigserial primary key,
  method text not null check (method in ('GET', 'POST', 'DELETE')),
  url text not null,
  headers jsonb not null,
  body bytea,
  timeout_milliseconds integer not null
);

create unlogged table net._http_response (
  id bigint,
  status_code integer,
  content_type text,
  headers jsonb,
  content text,
  timed_out boolean,
  error_msg text,
  created timestamptz not null default now()
);
create index _http_response_created_idx on net._http_response (created);

create function net._encode_url_with_params(url text, params jsonb) returns text
language sql immutable
as $$
  select case
    when params is null or params = '{}'::jsonb then url
    else url || case when strpos(url, '?') > 0 then '&' else '?' end || (
      select string_agg(key || '=' || value, '&' order by key) from jsonb_each_text(params)
    )
  end
$$;

create function net.http_post(
  url text,
  body jsonb default '{}'::jsonb,
  params jsonb default '{}'::jsonb,
  headers jsonb default '{"Content-Type": "application/json"}'::jsonb,
  timeout_milliseconds integer default 5000
) returns bigint
language plpgsql
security definer
set search_path = ''
as $$
declare
  request_id bigint;
begin
  if url is null then
    raise exception 'url must not be null';
  end if;
  insert into net.http_request_queue (method, url, headers, body, timeout_milliseconds)
  values (
    'POST',
    net._encode_url_with_params(url, params),
    coalesce(headers, '{}'::jsonb),
    convert_to(coalesce(body, 'null'::jsonb)::text, 'UTF8'),
    coalesce(timeout_milliseconds, 5000)
  )
  returning id into request_id;
  return request_id;
end
$$;

create function net.http_get(
  url text,
  params jsonb default '{}'::jsonb,
  headers jsonb default '{}'::jsonb,
  timeout_milliseconds integer default 5000
) returns bigint
language plpgsql
security definer
set search_path = ''
as $$
declare
  request_id bigint;
begin
  if url is null then
    raise exception 'url must not be null';
  end if;
  insert into net.http_request_queue (method, url, headers, body, timeout_milliseconds)
  values ('GET', net._encode_url_with_params(url, params), coalesce(headers, '{}'::jsonb), null,
          coalesce(timeout_milliseconds, 5000))
  returning id into request_id;
  return request_id;
end
$$;

revoke all on all functions in schema net from public;
