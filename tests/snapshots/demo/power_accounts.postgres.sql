WITH a_ev AS (
  SELECT
    m.account_id AS entity_id,
    e.timestamp AS timestamp,
    e.message_id AS message_id,
    e.seq AS seq,
    e.event AS event,
    CAST(e.properties AS JSON) ->> 'feature' AS _p0
  FROM ap_events AS e
  JOIN ap_account_members AS m
    ON e.profile_id = m.profile_id
  WHERE
    e.timestamp <= %(as_of)s
), a_evr AS (
  SELECT
    e.*
  FROM a_ev AS e
), a_evm AS (
  SELECT
    e.*,
    e.event = 'Feature Used'
    AND e.timestamp <= %(as_of)s
    AND e.timestamp > %(as_of)s - INTERVAL '604800 SECOND' AS _m1
  FROM a_evr AS e
), a_agg AS (
  SELECT
    entity_id,
    CAST(SUM(CASE WHEN _m1 THEN 1 ELSE 0 END) AS DOUBLE PRECISION) AS _ea0__0,
    CAST(COUNT(DISTINCT CASE WHEN _m1 THEN SUBSTRING(_p0 FROM 2) END) AS DOUBLE PRECISION) AS _ea0__1
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
    g._ea0__1 AS _ea0__1
  FROM a_entities AS n
  LEFT JOIN a_agg AS g
    ON n.entity_id = g.entity_id
), a_base AS (
  SELECT
    t.*,
    COALESCE(
      CAST(COALESCE(t._ea0__0, CAST(0 AS DOUBLE PRECISION)) AS DOUBLE PRECISION) >= CAST(10 AS DOUBLE PRECISION)
      AND CAST(COALESCE(t._ea0__1, CAST(0 AS DOUBLE PRECISION)) AS DOUBLE PRECISION) >= CAST(4 AS DOUBLE PRECISION),
      FALSE
    ) AS _ea0
  FROM a_traits AS t
), a_frame AS (
  SELECT
    b.*,
    b._ea0 AS _a_power_accounts
  FROM a_base AS b
)
SELECT
  entity_id
FROM a_frame
WHERE
  _a_power_accounts
ORDER BY
  entity_id
