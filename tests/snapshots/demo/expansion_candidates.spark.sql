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
), a_custom AS (
  SELECT
    account_id AS entity_id,
    MAX(CASE WHEN key = 'plan' THEN tagged END) AS _ct0,
    MAX(CASE WHEN key = 'employees' THEN tagged END) AS _ct1
  FROM ap_account_traits
  WHERE
    key IN ('plan', 'employees')
  GROUP BY
    account_id
), a_evr AS (
  SELECT
    e.*,
    ct._ct0,
    ct._ct1
  FROM a_ev AS e
  LEFT JOIN a_custom AS ct
    ON e.entity_id = ct.entity_id
), a_evm AS (
  SELECT
    e.*,
    e.event = 'Feature Used'
    AND e.timestamp <= :as_of
    AND e.timestamp > :as_of - INTERVAL '2592000' SECOND AS _m1
  FROM a_evr AS e
), a_agg AS (
  SELECT
    entity_id,
    CAST(SUM(CASE WHEN _m1 THEN 1 ELSE 0 END) AS BIGINT) AS _tr_account_feature_uses_30d
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
    COALESCE(g._tr_account_feature_uses_30d, 0) AS _tr_account_feature_uses_30d,
    ct._ct0,
    ct._ct1
  FROM a_entities AS n
  LEFT JOIN a_agg AS g
    ON n.entity_id = g.entity_id
  LEFT JOIN a_custom AS ct
    ON n.entity_id = ct.entity_id
), a_base AS (
  SELECT
    t.*
  FROM a_traits AS t
), a_frame AS (
  SELECT
    b.*,
    COALESCE(
      (
        CASE WHEN SUBSTRING(b._ct0, 1, 1) IN ('s', 'n') THEN SUBSTRING(b._ct0, 2) END = 'pro'
        AND CASE
          WHEN SUBSTRING(b._ct1, 1, 1) = 'n'
          OR (
            SUBSTRING(b._ct1, 1, 1) = 's'
            AND SUBSTRING(b._ct1, 2) RLIKE '^-?[0-9]+(\\.[0-9]+)?([eE][-+]?[0-9]+)?$'
          )
          THEN CAST(SUBSTRING(b._ct1, 2) AS DOUBLE)
        END >= CAST(40 AS DOUBLE)
      )
      AND CAST(b._tr_account_feature_uses_30d AS DOUBLE) >= CAST(20 AS DOUBLE),
      FALSE
    ) AS _a_expansion_candidates
  FROM a_base AS b
)
SELECT
  entity_id
FROM a_frame
WHERE
  _a_expansion_candidates
ORDER BY
  entity_id
