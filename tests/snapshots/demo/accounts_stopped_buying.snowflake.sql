WITH a_ev AS (
  SELECT
    m.account_id AS entity_id,
    e.timestamp AS timestamp,
    e.message_id AS message_id,
    e.seq AS seq,
    e.event AS event
  FROM ap_events AS e
  JOIN ap_account_members AS m
    ON e.profile_id = m.profile_id
  WHERE
    e.timestamp <= :as_of
), a_evr AS (
  SELECT
    e.*
  FROM a_ev AS e
), a_evm AS (
  SELECT
    e.*,
    e.event = 'Order Completed'
    AND e.timestamp <= :as_of
    AND e.timestamp > :as_of - INTERVAL '7776000 SECOND'
    AND e.timestamp <= :as_of - INTERVAL '2592000 SECOND' AS _m1,
    e.event = 'Order Completed'
    AND e.timestamp <= :as_of
    AND e.timestamp > :as_of - INTERVAL '2592000 SECOND' AS _m2
  FROM a_evr AS e
), a_agg AS (
  SELECT
    entity_id,
    CAST(SUM(CASE WHEN _m1 THEN 1 ELSE 0 END) AS DOUBLE) AS _ea0__0,
    CAST(SUM(CASE WHEN _m2 THEN 1 ELSE 0 END) AS DOUBLE) AS _ea1__0
  FROM a_evm
  GROUP BY
    entity_id
), a_entities AS (
  SELECT
    account_id AS entity_id
  FROM ap_accounts
), a_traits AS (
  SELECT
    n.entity_id,
    g._ea0__0 AS _ea0__0,
    g._ea1__0 AS _ea1__0
  FROM a_entities AS n
  LEFT JOIN a_agg AS g
    ON n.entity_id = g.entity_id
), a_base AS (
  SELECT
    t.*,
    COALESCE(CAST(COALESCE(t._ea0__0, CAST(0 AS DOUBLE)) AS DOUBLE) >= CAST(1 AS DOUBLE), FALSE) AS _ea0,
    COALESCE(CAST(COALESCE(t._ea1__0, CAST(0 AS DOUBLE)) AS DOUBLE) = CAST(0 AS DOUBLE), FALSE) AS _ea1
  FROM a_traits AS t
), a_frame AS (
  SELECT
    b.*,
    b._ea0 AND b._ea1 AS _a_accounts_stopped_buying
  FROM a_base AS b
)
SELECT
  entity_id
FROM a_frame
WHERE
  _a_accounts_stopped_buying
ORDER BY
  entity_id
