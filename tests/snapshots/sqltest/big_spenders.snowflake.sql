WITH u_ev AS (
  SELECT
    e.profile_id AS entity_id,
    e.timestamp AS timestamp,
    e.message_id AS message_id,
    e.seq AS seq,
    e.event AS event,
    JSON_EXTRACT_PATH_TEXT(e.properties, 'currency') AS _p0,
    JSON_EXTRACT_PATH_TEXT(e.properties, 'revenue') AS _p1
  FROM ap_events AS e
  WHERE
    e.timestamp <= :as_of
), u_custom AS (
  SELECT
    profile_id AS entity_id,
    MAX(CASE WHEN key = 'plan' THEN tagged END) AS _ct0
  FROM ap_user_traits
  WHERE
    key IN ('plan')
  GROUP BY
    profile_id
), u_evr AS (
  SELECT
    e.*,
    CASE WHEN SUBSTRING(e._p0, 1, 1) IN ('s', 'n') THEN SUBSTRING(e._p0, 2) END AS _p0_text,
    CASE
      WHEN SUBSTRING(e._p1, 1, 1) = 'n'
      OR (
        SUBSTRING(e._p1, 1, 1) = 's'
        AND REGEXP_LIKE(SUBSTRING(e._p1, 2), '^-?[0-9]+(\\.[0-9]+)?([eE][-+]?[0-9]+)?$')
      )
      THEN CAST(SUBSTRING(e._p1, 2) AS DOUBLE)
    END AS _p1_num,
    ct._ct0
  FROM u_ev AS e
  LEFT JOIN u_custom AS ct
    ON e.entity_id = ct.entity_id
), u_evm AS (
  SELECT
    e.*,
    e.event = 'Order Completed'
    AND e.timestamp <= :as_of
    AND e.timestamp > :as_of - INTERVAL '7776000 SECOND'
    AND COALESCE(e._p0_text = 'USD', FALSE) AS _m1
  FROM u_evr AS e
), u_agg AS (
  SELECT
    entity_id,
    CAST(SUM(CASE WHEN _m1 THEN _p1_num END) AS DOUBLE) AS _tr_total_revenue_90d
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
    COALESCE(g._tr_total_revenue_90d, CAST(0 AS DOUBLE)) AS _tr_total_revenue_90d,
    ct._ct0
  FROM u_entities AS n
  LEFT JOIN u_agg AS g
    ON n.entity_id = g.entity_id
  LEFT JOIN u_custom AS ct
    ON n.entity_id = ct.entity_id
), u_base AS (
  SELECT
    t.*
  FROM u_traits AS t
), u_frame AS (
  SELECT
    b.*,
    COALESCE(
      CAST(b._tr_total_revenue_90d AS DOUBLE) > CAST(500 AS DOUBLE)
      AND COALESCE(
        CASE WHEN SUBSTRING(b._ct0, 1, 1) IN ('s', 'n') THEN SUBSTRING(b._ct0, 2) END,
        'free'
      ) <> 'free',
      FALSE
    ) AS _a_big_spenders
  FROM u_base AS b
)
SELECT
  entity_id
FROM u_frame
WHERE
  _a_big_spenders
ORDER BY
  entity_id
