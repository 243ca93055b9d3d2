WITH a_ev AS (
  SELECT
    m.account_id AS entity_id,
    e.timestamp AS timestamp,
    e.message_id AS message_id,
    e.seq AS seq,
    e.event AS event,
    JSON_EXTRACT_PATH_TEXT(e.properties, 'feature') AS _p0,
    JSON_EXTRACT_PATH_TEXT(e.properties, 'revenue') AS _p1
  FROM ap_events AS e
  JOIN ap_account_members AS m
    ON e.profile_id = m.profile_id
  WHERE
    e.timestamp <= :as_of
), a_evr AS (
  SELECT
    e.*,
    CASE
      WHEN SUBSTRING(e._p1, 1, 1) = 'n'
      OR (
        SUBSTRING(e._p1, 1, 1) = 's'
        AND REGEXP_LIKE(SUBSTRING(e._p1, 2), '^-?[0-9]+(\\.[0-9]+)?([eE][-+]?[0-9]+)?$')
      )
      THEN CAST(SUBSTRING(e._p1, 2) AS DOUBLE)
    END AS _p1_num
  FROM a_ev AS e
), a_evm AS (
  SELECT
    e.*,
    e.event = 'Feature Used'
    AND e.timestamp <= :as_of
    AND e.timestamp > :as_of - INTERVAL '2592000 SECOND' AS _m1,
    e.event = 'Order Completed'
    AND e.timestamp <= :as_of
    AND e.timestamp > :as_of - INTERVAL '7776000 SECOND' AS _m2
  FROM a_evr AS e
), a_agg AS (
  SELECT
    entity_id,
    CAST(COUNT(DISTINCT CASE WHEN _m1 THEN SUBSTRING(_p0, 2) END) AS BIGINT) AS _tr_account_features_adopted_30d,
    CAST(SUM(CASE WHEN _m2 THEN _p1_num END) AS DOUBLE) AS _tr_account_revenue_90d
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
    COALESCE(g._tr_account_features_adopted_30d, 0) AS _tr_account_features_adopted_30d,
    COALESCE(g._tr_account_revenue_90d, CAST(0 AS DOUBLE)) AS _tr_account_revenue_90d
  FROM a_entities AS n
  LEFT JOIN a_agg AS g
    ON n.entity_id = g.entity_id
), a_base AS (
  SELECT
    t.*
  FROM a_traits AS t
), a_frame AS (
  SELECT
    b.*,
    COALESCE(
      CAST(b._tr_account_revenue_90d AS DOUBLE) > CAST(1000 AS DOUBLE)
      AND CAST(b._tr_account_features_adopted_30d AS DOUBLE) >= CAST(3 AS DOUBLE),
      FALSE
    ) AS _a_big_spending_accounts
  FROM a_base AS b
)
SELECT
  entity_id
FROM a_frame
WHERE
  _a_big_spending_accounts
ORDER BY
  entity_id
