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
), u_custom AS (
  SELECT
    profile_id AS entity_id,
    MAX(CASE WHEN key = 'plan' THEN tagged END) AS _ct0,
    MAX(CASE WHEN key = 'country' THEN tagged END) AS _ct1
  FROM ap_user_traits
  WHERE
    key IN ('plan', 'country')
  GROUP BY
    profile_id
), u_evr AS (
  SELECT
    e.*,
    ct._ct0,
    ct._ct1
  FROM u_ev AS e
  LEFT JOIN u_custom AS ct
    ON e.entity_id = ct.entity_id
), u_evm AS (
  SELECT
    e.*
  FROM u_evr AS e
), u_agg AS (
  SELECT
    entity_id
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
    ct._ct0,
    ct._ct1
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
    b._known
    AND COALESCE(
      (
        CASE WHEN SUBSTRING(b._ct0, 1, 1) IN ('s', 'n') THEN SUBSTRING(b._ct0, 2) END = 'pro'
        OR CASE WHEN SUBSTRING(b._ct0, 1, 1) IN ('s', 'n') THEN SUBSTRING(b._ct0, 2) END = 'business'
      )
      AND CASE WHEN SUBSTRING(b._ct1, 1, 1) IN ('s', 'n') THEN SUBSTRING(b._ct1, 2) END = 'US',
      FALSE
    ) AS _a_premium_us_customers
  FROM u_base AS b
)
SELECT
  entity_id
FROM u_frame
WHERE
  _a_premium_us_customers
ORDER BY
  entity_id
