WITH u_ev AS (
  SELECT
    e.profile_id AS entity_id,
    e.timestamp AS timestamp,
    e.message_id AS message_id,
    e.seq AS seq,
    e.event AS event,
    GET_JSON_OBJECT(e.properties, '$.currency') AS _p0,
    GET_JSON_OBJECT(e.properties, '$.revenue') AS _p1,
    GET_JSON_OBJECT(e.properties, '$.price') AS _p2,
    GET_JSON_OBJECT(e.properties, '$.quantity') AS _p3,
    GET_JSON_OBJECT(e.properties, '$.name') AS _p4
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
        AND SUBSTRING(e._p1, 2) RLIKE '^-?[0-9]+(\\.[0-9]+)?([eE][-+]?[0-9]+)?$'
      )
      THEN CAST(SUBSTRING(e._p1, 2) AS DOUBLE)
    END AS _p1_num,
    CASE
      WHEN SUBSTRING(e._p2, 1, 1) = 'n'
      OR (
        SUBSTRING(e._p2, 1, 1) = 's'
        AND SUBSTRING(e._p2, 2) RLIKE '^-?[0-9]+(\\.[0-9]+)?([eE][-+]?[0-9]+)?$'
      )
      THEN CAST(SUBSTRING(e._p2, 2) AS DOUBLE)
    END AS _p2_num,
    CASE
      WHEN SUBSTRING(e._p3, 1, 1) = 'n'
      OR (
        SUBSTRING(e._p3, 1, 1) = 's'
        AND SUBSTRING(e._p3, 2) RLIKE '^-?[0-9]+(\\.[0-9]+)?([eE][-+]?[0-9]+)?$'
      )
      THEN CAST(SUBSTRING(e._p3, 2) AS DOUBLE)
    END AS _p3_num,
    CASE WHEN SUBSTRING(e._p4, 1, 1) IN ('s', 'n') THEN SUBSTRING(e._p4, 2) END AS _p4_text,
    ct._ct0
  FROM u_ev AS e
  LEFT JOIN u_custom AS ct
    ON e.entity_id = ct.entity_id
), u_evm AS (
  SELECT
    e.*,
    e.event = 'Order Completed'
    AND e.timestamp <= :as_of
    AND e.timestamp > :as_of - INTERVAL '7776000' SECOND
    AND COALESCE(e._p0_text = 'USD', FALSE) AS _m1,
    e.event = 'Product Added'
    AND e.timestamp <= :as_of
    AND e.timestamp > :as_of - INTERVAL '604800' SECOND
    AND COALESCE(
      (
        e._p2_num * e._p3_num > CAST(100 AS DOUBLE)
        OR LOWER(e._p4_text) LIKE '%gift%' ESCAPE '\\'
      ),
      FALSE
    ) AS _m2,
    e.event = 'Order Completed'
    AND e.timestamp <= :as_of
    AND e.timestamp > :as_of - INTERVAL '604800' SECOND AS _m3
  FROM u_evr AS e
), u_agg AS (
  SELECT
    entity_id,
    CAST(SUM(CASE WHEN _m1 THEN _p1_num END) AS DOUBLE) AS _tr_total_revenue_90d,
    CAST(SUM(CASE WHEN _m2 THEN 1 ELSE 0 END) AS DOUBLE) AS _eu0__0,
    CAST(SUM(CASE WHEN _m2 THEN _p2_num END) AS DOUBLE) AS _eu0__1,
    CAST(SUM(CASE WHEN _m3 THEN 1 ELSE 0 END) AS DOUBLE) AS _eu1__0
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
    g._eu0__0 AS _eu0__0,
    g._eu0__1 AS _eu0__1,
    g._eu1__0 AS _eu1__0,
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
      CAST(COALESCE(t._eu0__0, CAST(0 AS DOUBLE)) AS DOUBLE) >= CAST(2 AS DOUBLE)
      AND CASE
        WHEN CAST(7 AS DOUBLE) = CAST(0 AS DOUBLE)
        THEN CAST(NULL AS DOUBLE)
        ELSE CAST(COALESCE(t._eu0__1, CAST(0 AS DOUBLE)) AS DOUBLE) - CAST(7 AS DOUBLE) * SIGN((
          CAST(COALESCE(t._eu0__1, CAST(0 AS DOUBLE)) AS DOUBLE) / CAST(7 AS DOUBLE)
        )) * FLOOR(
          ABS((
            CAST(COALESCE(t._eu0__1, CAST(0 AS DOUBLE)) AS DOUBLE) / CAST(7 AS DOUBLE)
          ))
        )
      END <> CAST(0 AS DOUBLE),
      FALSE
    ) AS _eu0,
    COALESCE(CAST(COALESCE(t._eu1__0, CAST(0 AS DOUBLE)) AS DOUBLE) >= CAST(1 AS DOUBLE), FALSE) AS _eu1
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
    ) AS _a_big_spenders,
    b._known
    AND (
      b._eu0
      AND NOT (
        b._eu1
      )
      AND NOT (
        (
          COALESCE(
            CAST(b._tr_total_revenue_90d AS DOUBLE) > CAST(500 AS DOUBLE)
            AND COALESCE(
              CASE WHEN SUBSTRING(b._ct0, 1, 1) IN ('s', 'n') THEN SUBSTRING(b._ct0, 2) END,
              'free'
            ) <> 'free',
            FALSE
          )
        )
      )
    ) AS _a_cart_abandoners
  FROM u_base AS b
)
SELECT
  entity_id
FROM u_frame
WHERE
  _a_cart_abandoners
ORDER BY
  entity_id
