WITH u_ev AS (
  SELECT
    e.profile_id AS entity_id,
    e.timestamp AS timestamp,
    e.message_id AS message_id,
    e.seq AS seq,
    e.event AS event,
    CAST(e.properties AS JSON) ->> 'currency' AS _p0,
    CAST(e.properties AS JSON) ->> 'revenue' AS _p1
  FROM ap_events AS e
  WHERE
    e.timestamp <= %(as_of)s
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
    CASE
      WHEN SUBSTRING(e._p0 FROM 1 FOR 1) IN ('s', 'n')
      THEN SUBSTRING(e._p0 FROM 2)
    END AS _p0_text,
    CASE
      WHEN SUBSTRING(e._p1 FROM 1 FOR 1) = 'n'
      OR (
        SUBSTRING(e._p1 FROM 1 FOR 1) = 's'
        AND SUBSTRING(e._p1 FROM 2) ~ '^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$'
      )
      THEN CAST(SUBSTRING(e._p1 FROM 2) AS DOUBLE PRECISION)
    END AS _p1_num,
    ct._ct0
  FROM u_ev AS e
  LEFT JOIN u_custom AS ct
    ON e.entity_id = ct.entity_id
), u_evm AS (
  SELECT
    e.*,
    e.event = 'Order Completed'
    AND e.timestamp <= %(as_of)s
    AND e.timestamp > %(as_of)s - INTERVAL '7776000 SECOND'
    AND COALESCE(e._p0_text = 'USD', FALSE) AS _m1,
    e.event = 'Order Refunded'
    AND e.timestamp <= %(as_of)s
    AND e.timestamp > %(as_of)s - INTERVAL '2592000 SECOND' AS _m2
  FROM u_evr AS e
), u_agg AS (
  SELECT
    entity_id,
    CAST(SUM(CASE WHEN _m1 THEN _p1_num END) AS DOUBLE PRECISION) AS _tr_total_revenue_90d,
    CAST(SUM(CASE WHEN _m2 THEN 1 ELSE 0 END) AS DOUBLE PRECISION) AS _eu0__0
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
    COALESCE(g._tr_total_revenue_90d, CAST(0 AS DOUBLE PRECISION)) AS _tr_total_revenue_90d,
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
      CAST(COALESCE(t._eu0__0, CAST(0 AS DOUBLE PRECISION)) AS DOUBLE PRECISION) >= CAST(1 AS DOUBLE PRECISION),
      FALSE
    ) AS _eu0
  FROM u_traits AS t
), u_frame AS (
  SELECT
    b.*,
    COALESCE(
      CAST(b._tr_total_revenue_90d AS DOUBLE PRECISION) > CAST(500 AS DOUBLE PRECISION)
      AND COALESCE(
        CASE
          WHEN SUBSTRING(b._ct0 FROM 1 FOR 1) IN ('s', 'n')
          THEN SUBSTRING(b._ct0 FROM 2)
        END,
        'free'
      ) <> 'free',
      FALSE
    ) AS _a_big_spenders,
    (
      COALESCE(
        CAST(b._tr_total_revenue_90d AS DOUBLE PRECISION) > CAST(500 AS DOUBLE PRECISION)
        AND COALESCE(
          CASE
            WHEN SUBSTRING(b._ct0 FROM 1 FOR 1) IN ('s', 'n')
            THEN SUBSTRING(b._ct0 FROM 2)
          END,
          'free'
        ) <> 'free',
        FALSE
      )
    ) AS _uc0,
    b._eu0 AS _uc1
  FROM u_base AS b
), a_ev AS (
  SELECT
    m.account_id AS entity_id,
    e.timestamp AS timestamp,
    e.message_id AS message_id,
    e.seq AS seq,
    e.event AS event,
    CAST(e.properties AS JSON) ->> 'revenue' AS _p0,
    CAST(e.properties AS JSON) ->> 'order_id' AS _p1
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
    CASE
      WHEN SUBSTRING(e._p0 FROM 1 FOR 1) = 'n'
      OR (
        SUBSTRING(e._p0 FROM 1 FOR 1) = 's'
        AND SUBSTRING(e._p0 FROM 2) ~ '^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$'
      )
      THEN CAST(SUBSTRING(e._p0 FROM 2) AS DOUBLE PRECISION)
    END AS _p0_num,
    ct._ct0
  FROM a_ev AS e
  LEFT JOIN a_custom AS ct
    ON e.entity_id = ct.entity_id
), a_evm AS (
  SELECT
    e.*,
    e.event = 'Order Completed' AND e.timestamp <= %(as_of)s AS _m1,
    e.event = 'Order Completed' AND e.timestamp <= %(as_of)s AS _m2
  FROM a_evr AS e
), a_agg AS (
  SELECT
    entity_id,
    CAST(AVG(CASE WHEN _m1 THEN _p0_num END) AS DOUBLE PRECISION) AS _tr_account_revenue,
    CAST(COUNT(DISTINCT CASE WHEN _m2 THEN SUBSTRING(_p1 FROM 2) END) AS DOUBLE PRECISION) AS _ea2__0
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
    g._tr_account_revenue AS _tr_account_revenue,
    g._ea2__0 AS _ea2__0,
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
), a_users1 AS (
  SELECT
    m.account_id AS entity_id,
    MAX(CASE WHEN COALESCE(uf._uc1, FALSE) THEN 1 ELSE 0 END) AS _any,
    MIN(CASE WHEN COALESCE(uf._uc1, FALSE) THEN 1 ELSE 0 END) AS _all
  FROM ap_account_members AS m
  LEFT JOIN u_frame AS uf
    ON m.profile_id = uf.entity_id
  GROUP BY
    m.account_id
), a_base AS (
  SELECT
    t.*,
    COALESCE(
      CAST(COALESCE(t._ea2__0, CAST(0 AS DOUBLE PRECISION)) AS DOUBLE PRECISION) >= CAST(3 AS DOUBLE PRECISION),
      FALSE
    ) AS _ea2,
    COALESCE(us0._any, 0) = 1 AS _ua0,
    NOT COALESCE(us1._any, 0) = 1 AS _ua1
  FROM a_traits AS t
  LEFT JOIN a_users0 AS us0
    ON t.entity_id = us0.entity_id
  LEFT JOIN a_users1 AS us1
    ON t.entity_id = us1.entity_id
), a_frame AS (
  SELECT
    b.*,
    (
      b._ua0
      OR (
        COALESCE(
          CAST(b._tr_account_revenue AS DOUBLE PRECISION) >= CAST(100 AS DOUBLE PRECISION)
          AND (
            CASE
              WHEN SUBSTRING(b._ct0 FROM 1 FOR 1) IN ('s', 'n')
              THEN SUBSTRING(b._ct0 FROM 2)
            END = 'pro'
            OR CASE
              WHEN SUBSTRING(b._ct0 FROM 1 FOR 1) IN ('s', 'n')
              THEN SUBSTRING(b._ct0 FROM 2)
            END = 'business'
          ),
          FALSE
        )
        AND b._ua1
        AND b._ea2
      )
    ) AS _a_active_accounts
  FROM a_base AS b
)
SELECT
  entity_id
FROM a_frame
WHERE
  _a_active_accounts
ORDER BY
  entity_id
