WITH u_ev AS (
  SELECT
    e.profile_id AS entity_id,
    e.timestamp AS timestamp,
    e.message_id AS message_id,
    e.seq AS seq,
    e.event AS event,
    e.properties ->> '$.category' AS _p0
  FROM ap_events AS e
  WHERE
    e.timestamp <= $as_of
), u_evr AS (
  SELECT
    e.*
  FROM u_ev AS e
), u_evm AS (
  SELECT
    e.*,
    e.event = 'Product Viewed'
    AND e.timestamp <= $as_of
    AND e.timestamp > $as_of - INTERVAL '2592000' SECOND AS _m1
  FROM u_evr AS e
), u_agg AS (
  SELECT
    entity_id,
    CAST(COUNT(DISTINCT CASE WHEN _m1 THEN SUBSTRING(_p0, 2) END) AS DOUBLE) AS _eu0__0
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
    g._eu0__0 AS _eu0__0
  FROM u_entities AS n
  LEFT JOIN u_agg AS g
    ON n.entity_id = g.entity_id
), u_base AS (
  SELECT
    t.*,
    COALESCE(CAST(COALESCE(t._eu0__0, CAST(0 AS DOUBLE)) AS DOUBLE) >= CAST(4 AS DOUBLE), FALSE) AS _eu0
  FROM u_traits AS t
), u_frame AS (
  SELECT
    b.*,
    b._eu0 AS _a_category_explorers
  FROM u_base AS b
)
SELECT
  entity_id
FROM u_frame
WHERE
  _a_category_explorers
ORDER BY
  entity_id
