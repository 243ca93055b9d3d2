WITH u_ev AS (
  SELECT
    e.profile_id AS entity_id,
    e.timestamp AS timestamp,
    e.message_id AS message_id,
    e.seq AS seq,
    e.event AS event
  FROM ap_events AS e
  WHERE
    e.timestamp <= @as_of
), u_custom AS (
  SELECT
    profile_id AS entity_id,
    MAX(CASE WHEN key = 'crm.plan' THEN tagged END) AS _ct0
  FROM ap_user_traits
  WHERE
    key IN ('crm.plan')
  GROUP BY
    profile_id
), u_evr AS (
  SELECT
    e.*,
    ct._ct0
  FROM u_ev AS e
  LEFT JOIN u_custom AS ct
    ON e.entity_id = ct.entity_id
), u_evm AS (
  SELECT
    e.*,
    e.event = 'Order Completed'
    AND e.timestamp <= @as_of
    AND e.timestamp > @as_of - INTERVAL '2592000' SECOND AS _m1
  FROM u_evr AS e
), u_agg AS (
  SELECT
    entity_id,
    CAST(SUM(CASE WHEN _m1 THEN 1 ELSE 0 END) AS FLOAT64) AS _eu0__0
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
    ct._ct0
  FROM u_entities AS n
  LEFT JOIN u_agg AS g
    ON n.entity_id = g.entity_id
  LEFT JOIN u_custom AS ct
    ON n.entity_id = ct.entity_id
), u_base AS (
  SELECT
    t.*,
    COALESCE(
      CAST(COALESCE(t._eu0__0, CAST(0 AS FLOAT64)) AS FLOAT64) >= CAST(1 AS FLOAT64),
      FALSE
    ) AS _eu0
  FROM u_traits AS t
), u_frame AS (
  SELECT
    b.*,
    COALESCE(
      CASE WHEN SUBSTRING(b._ct0, 1, 1) IN ('s', 'n') THEN SUBSTRING(b._ct0, 2) END = 'pro',
      FALSE
    )
    AND NOT (
      b._eu0
    ) AS _a_crm_pro_without_recent_orders
  FROM u_base AS b
)
SELECT
  entity_id
FROM u_frame
WHERE
  _a_crm_pro_without_recent_orders
ORDER BY
  entity_id
