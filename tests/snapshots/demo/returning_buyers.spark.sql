WITH u_ev AS (
  SELECT
    e.profile_id AS entity_id,
    e.timestamp AS timestamp,
    e.message_id AS message_id,
    e.seq AS seq,
    e.event AS event
  FROM ap_events AS e
  WHERE
    e.timestamp <= :as_of
), u_evr AS (
  SELECT
    e.*
  FROM u_ev AS e
), u_evm AS (
  SELECT
    e.*,
    e.event = 'Order Completed'
    AND e.timestamp <= :as_of
    AND e.timestamp > :as_of - INTERVAL '1209600' SECOND AS _m1,
    e.event = 'Order Completed'
    AND e.timestamp <= :as_of
    AND e.timestamp > :as_of - INTERVAL '3801600' SECOND
    AND e.timestamp <= :as_of - INTERVAL '1209600' SECOND AS _m2,
    e.event = 'Order Completed'
    AND e.timestamp <= :as_of
    AND e.timestamp <= :as_of - INTERVAL '3801600' SECOND AS _m3
  FROM u_evr AS e
), u_agg AS (
  SELECT
    entity_id,
    CAST(SUM(CASE WHEN _m1 THEN 1 ELSE 0 END) AS DOUBLE) AS _eu0__0,
    CAST(SUM(CASE WHEN _m2 THEN 1 ELSE 0 END) AS DOUBLE) AS _eu1__0,
    CAST(SUM(CASE WHEN _m3 THEN 1 ELSE 0 END) AS DOUBLE) AS _eu2__0
  FROM u_evm
  GROUP BY
    entity_id
), u_entities AS (
  SELECT
    profile_id AS entity_id,
    known AS _known
  FROM ap_profiles
), u_traits AS (
  SELECT
    n.entity_id,
    n._known,
    g._eu0__0 AS _eu0__0,
    g._eu1__0 AS _eu1__0,
    g._eu2__0 AS _eu2__0
  FROM u_entities AS n
  LEFT JOIN u_agg AS g
    ON n.entity_id = g.entity_id
), u_base AS (
  SELECT
    t.*,
    COALESCE(CAST(COALESCE(t._eu0__0, CAST(0 AS DOUBLE)) AS DOUBLE) >= CAST(1 AS DOUBLE), FALSE) AS _eu0,
    COALESCE(CAST(COALESCE(t._eu1__0, CAST(0 AS DOUBLE)) AS DOUBLE) = CAST(0 AS DOUBLE), FALSE) AS _eu1,
    COALESCE(CAST(COALESCE(t._eu2__0, CAST(0 AS DOUBLE)) AS DOUBLE) >= CAST(1 AS DOUBLE), FALSE) AS _eu2
  FROM u_traits AS t
), u_frame AS (
  SELECT
    b.*,
    b._eu0 AND b._eu1 AND b._eu2 AS _a_returning_buyers
  FROM u_base AS b
)
SELECT
  entity_id
FROM u_frame
WHERE
  _a_returning_buyers
ORDER BY
  entity_id
