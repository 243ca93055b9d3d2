WITH u_ev AS (
  SELECT
    e.profile_id AS entity_id,
    e.timestamp AS timestamp,
    e.message_id AS message_id,
    e.seq AS seq,
    e.event AS event
  FROM ap_events AS e
  WHERE
    e.timestamp <= %(as_of)s
), u_evr AS (
  SELECT
    e.*
  FROM u_ev AS e
), u_evm AS (
  SELECT
    e.*,
    e.event IN ('Signed In', 'Logged In')
    AND e.timestamp <= %(as_of)s
    AND e.timestamp > %(as_of)s - INTERVAL '2592000 SECOND' AS _m1
  FROM u_evr AS e
), u_agg AS (
  SELECT
    entity_id,
    CAST(SUM(CASE WHEN _m1 THEN 1 ELSE 0 END) AS DOUBLE PRECISION) AS _eu0__0
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
    COALESCE(
      CAST(COALESCE(t._eu0__0, CAST(0 AS DOUBLE PRECISION)) AS DOUBLE PRECISION) >= CAST(1 AS DOUBLE PRECISION),
      FALSE
    ) AS _eu0
  FROM u_traits AS t
), u_frame AS (
  SELECT
    b.*,
    b._eu0 AS _uc0
  FROM u_base AS b
), a_ev AS (
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
    e.timestamp <= %(as_of)s
), a_custom AS (
  SELECT
    account_id AS entity_id,
    MAX(CASE WHEN key = 'plan' THEN tagged END) AS _ct0
  FROM ap_account_traits
  WHERE
    key IN ('plan')
  GROUP BY
    account_id
), a_evr AS (
  SELECT
    e.*,
    ct._ct0
  FROM a_ev AS e
  LEFT JOIN a_custom AS ct
    ON e.entity_id = ct.entity_id
), a_evm AS (
  SELECT
    e.*
  FROM a_evr AS e
), a_agg AS (
  SELECT
    entity_id
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
    ct._ct0
  FROM a_entities AS n
  LEFT JOIN a_agg AS g
    ON n.entity_id = g.entity_id
  LEFT JOIN a_custom AS ct
    ON n.entity_id = ct.entity_id
), a_users0 AS (
  SELECT
    m.account_id AS entity_id,
    MAX(CASE WHEN COALESCE(uf._uc0, FALSE) THEN 1 ELSE 0 END) AS _any,
    MIN(CASE WHEN COALESCE(uf._uc0, FALSE) THEN 1 ELSE 0 END) AS _all
  FROM ap_account_members AS m
  LEFT JOIN u_frame AS uf
    ON m.profile_id = uf.entity_id
  GROUP BY
    m.account_id
), a_base AS (
  SELECT
    t.*,
    NOT COALESCE(us0._any, 0) = 1 AS _ua0
  FROM a_traits AS t
  LEFT JOIN a_users0 AS us0
    ON t.entity_id = us0.entity_id
), a_frame AS (
  SELECT
    b.*,
    COALESCE(
      CASE
        WHEN SUBSTRING(b._ct0 FROM 1 FOR 1) IN ('s', 'n')
        THEN SUBSTRING(b._ct0 FROM 2)
      END = 'business',
      FALSE
    )
    AND b._ua0 AS _a_dormant_business_accounts
  FROM a_base AS b
)
SELECT
  entity_id
FROM a_frame
WHERE
  _a_dormant_business_accounts
ORDER BY
  entity_id
