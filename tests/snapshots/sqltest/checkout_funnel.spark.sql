WITH u_ev AS (
  SELECT
    e.profile_id AS entity_id,
    e.timestamp AS timestamp,
    e.message_id AS message_id,
    e.seq AS seq,
    e.event AS event,
    GET_JSON_OBJECT(e.properties, '$.currency') AS _p0,
    GET_JSON_OBJECT(e.properties, '$.revenue') AS _p1,
    GET_JSON_OBJECT(e.properties, '$.product_id') AS _p2,
    GET_JSON_OBJECT(e.context, '$[\'device.type\']') AS _c3,
    GET_JSON_OBJECT(e.properties, '$.price') AS _p4
  FROM ap_events AS e
  WHERE
    e.timestamp <= :as_of
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
    CASE WHEN SUBSTRING(e._c3, 1, 1) IN ('s', 'n') THEN SUBSTRING(e._c3, 2) END AS _c3_text,
    SUBSTRING(e._p2, 1, 1) AS _p2_kind,
    CASE
      WHEN SUBSTRING(e._p2, 1, 1) = 'n'
      OR (
        SUBSTRING(e._p2, 1, 1) = 's'
        AND SUBSTRING(e._p2, 2) RLIKE '^-?[0-9]+(\\.[0-9]+)?([eE][-+]?[0-9]+)?$'
      )
      THEN CAST(SUBSTRING(e._p2, 2) AS DOUBLE)
    END AS _p2_num,
    CASE WHEN SUBSTRING(e._p2, 1, 1) IN ('s', 'n') THEN SUBSTRING(e._p2, 2) END AS _p2_text,
    CASE WHEN SUBSTRING(e._p2, 1, 1) = 'b' THEN SUBSTRING(e._p2, 2) = 'true' END AS _p2_boolean,
    CASE
      WHEN SUBSTRING(e._p4, 1, 1) = 'n'
      OR (
        SUBSTRING(e._p4, 1, 1) = 's'
        AND SUBSTRING(e._p4, 2) RLIKE '^-?[0-9]+(\\.[0-9]+)?([eE][-+]?[0-9]+)?$'
      )
      THEN CAST(SUBSTRING(e._p4, 2) AS DOUBLE)
    END AS _p4_num
  FROM u_ev AS e
), u_evm AS (
  SELECT
    e.*,
    e.event = 'Order Completed'
    AND e.timestamp <= :as_of
    AND e.timestamp > :as_of - INTERVAL '7776000' SECOND
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
    COALESCE(g._tr_total_revenue_90d, CAST(0 AS DOUBLE)) AS _tr_total_revenue_90d
  FROM u_entities AS n
  LEFT JOIN u_agg AS g
    ON n.entity_id = g.entity_id
), u_evt AS (
  SELECT
    e.*,
    t._tr_total_revenue_90d
  FROM u_evr AS e
  JOIN u_traits AS t
    ON e.entity_id = t.entity_id
), u_f0_s0 AS (
  SELECT DISTINCT
    c.entity_id,
    c.timestamp AS _ts,
    c._p2
  FROM u_evt AS c
  WHERE
    c.event = 'Product Viewed'
    AND c.timestamp <= :as_of
    AND c.timestamp > :as_of - INTERVAL '2592000' SECOND
    AND c.timestamp >= CAST('2026-01-01T00:00:00+00:00' AS TIMESTAMP)
    AND COALESCE(c._c3_text = 'mobile', FALSE)
), u_f0_s1 AS (
  SELECT DISTINCT
    c.entity_id,
    c.timestamp AS _ts
  FROM u_f0_s0 AS p
  JOIN u_evt AS c
    ON c.entity_id = p.entity_id
    AND c.timestamp > p._ts
    AND c.event = 'Product Added'
    AND c.timestamp <= :as_of
    AND c.timestamp >= CAST('2026-01-01T00:00:00+00:00' AS TIMESTAMP)
    AND c.timestamp <= p._ts + INTERVAL '86400' SECOND
    AND COALESCE(
      CASE
        WHEN c._p2_kind = 'n' AND SUBSTRING(p._p2, 1, 1) = 'n'
        THEN c._p2_num = CASE
          WHEN SUBSTRING(p._p2, 1, 1) = 'n'
          OR (
            SUBSTRING(p._p2, 1, 1) = 's'
            AND SUBSTRING(p._p2, 2) RLIKE '^-?[0-9]+(\\.[0-9]+)?([eE][-+]?[0-9]+)?$'
          )
          THEN CAST(SUBSTRING(p._p2, 2) AS DOUBLE)
        END
        WHEN c._p2_kind = 's' AND SUBSTRING(p._p2, 1, 1) = 's'
        THEN c._p2_text = CASE WHEN SUBSTRING(p._p2, 1, 1) IN ('s', 'n') THEN SUBSTRING(p._p2, 2) END
        WHEN c._p2_kind = 'b' AND SUBSTRING(p._p2, 1, 1) = 'b'
        THEN c._p2_boolean = CASE WHEN SUBSTRING(p._p2, 1, 1) = 'b' THEN SUBSTRING(p._p2, 2) = 'true' END
        ELSE CAST(NULL AS BOOLEAN)
      END
      AND c._p4_num >= CASE
        WHEN CAST(10 AS DOUBLE) = CAST(0 AS DOUBLE)
        THEN CAST(NULL AS DOUBLE)
        ELSE CAST(c._tr_total_revenue_90d AS DOUBLE) / CAST(10 AS DOUBLE)
      END,
      FALSE
    )
), u_f0_matched AS (
  SELECT DISTINCT
    p.entity_id,
    p._ts
  FROM u_f0_s1 AS p
  JOIN u_evt AS c
    ON c.entity_id = p.entity_id
    AND c.timestamp > p._ts
    AND c.event = 'Order Completed'
    AND c.timestamp <= :as_of
    AND c.timestamp >= CAST('2026-01-01T00:00:00+00:00' AS TIMESTAMP)
    AND c.timestamp <= p._ts + INTERVAL '172800' SECOND
), u_f0 AS (
  SELECT DISTINCT
    p.entity_id
  FROM u_f0_s1 AS p
  LEFT JOIN u_f0_matched AS m
    ON p.entity_id IS NOT DISTINCT FROM m.entity_id AND p._ts IS NOT DISTINCT FROM m._ts
  WHERE
    m.entity_id IS NULL
), u_base AS (
  SELECT
    t.*,
    NOT fu0.entity_id IS NULL AS _fu0
  FROM u_traits AS t
  LEFT JOIN u_f0 AS fu0
    ON t.entity_id = fu0.entity_id
), u_frame AS (
  SELECT
    b.*,
    b._fu0 AS _a_checkout_funnel
  FROM u_base AS b
)
SELECT
  entity_id
FROM u_frame
WHERE
  _a_checkout_funnel
ORDER BY
  entity_id
