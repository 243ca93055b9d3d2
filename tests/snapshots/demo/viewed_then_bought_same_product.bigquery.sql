WITH u_ev AS (
  SELECT
    e.profile_id AS entity_id,
    e.timestamp AS timestamp,
    e.message_id AS message_id,
    e.seq AS seq,
    e.event AS event,
    JSON_EXTRACT_SCALAR(e.properties, '$.product_id') AS _p0,
    JSON_EXTRACT_SCALAR(e.properties, '$.cart_id') AS _p1,
    JSON_EXTRACT_SCALAR(e.properties, '$.order_id') AS _p2
  FROM ap_events AS e
  WHERE
    e.timestamp <= @as_of
), u_evr AS (
  SELECT
    e.*,
    SUBSTRING(e._p0, 1, 1) AS _p0_kind,
    CASE
      WHEN SUBSTRING(e._p0, 1, 1) = 'n'
      OR (
        SUBSTRING(e._p0, 1, 1) = 's'
        AND REGEXP_CONTAINS(SUBSTRING(e._p0, 2), '^-?[0-9]+(\\.[0-9]+)?([eE][-+]?[0-9]+)?$')
      )
      THEN CAST(SUBSTRING(e._p0, 2) AS FLOAT64)
    END AS _p0_num,
    CASE WHEN SUBSTRING(e._p0, 1, 1) IN ('s', 'n') THEN SUBSTRING(e._p0, 2) END AS _p0_text,
    CASE WHEN SUBSTRING(e._p0, 1, 1) = 'b' THEN SUBSTRING(e._p0, 2) = 'true' END AS _p0_boolean,
    SUBSTRING(e._p1, 1, 1) AS _p1_kind,
    CASE
      WHEN SUBSTRING(e._p1, 1, 1) = 'n'
      OR (
        SUBSTRING(e._p1, 1, 1) = 's'
        AND REGEXP_CONTAINS(SUBSTRING(e._p1, 2), '^-?[0-9]+(\\.[0-9]+)?([eE][-+]?[0-9]+)?$')
      )
      THEN CAST(SUBSTRING(e._p1, 2) AS FLOAT64)
    END AS _p1_num,
    CASE WHEN SUBSTRING(e._p1, 1, 1) IN ('s', 'n') THEN SUBSTRING(e._p1, 2) END AS _p1_text,
    CASE WHEN SUBSTRING(e._p1, 1, 1) = 'b' THEN SUBSTRING(e._p1, 2) = 'true' END AS _p1_boolean,
    SUBSTRING(e._p2, 1, 1) AS _p2_kind,
    CASE
      WHEN SUBSTRING(e._p2, 1, 1) = 'n'
      OR (
        SUBSTRING(e._p2, 1, 1) = 's'
        AND REGEXP_CONTAINS(SUBSTRING(e._p2, 2), '^-?[0-9]+(\\.[0-9]+)?([eE][-+]?[0-9]+)?$')
      )
      THEN CAST(SUBSTRING(e._p2, 2) AS FLOAT64)
    END AS _p2_num,
    CASE WHEN SUBSTRING(e._p2, 1, 1) IN ('s', 'n') THEN SUBSTRING(e._p2, 2) END AS _p2_text,
    CASE WHEN SUBSTRING(e._p2, 1, 1) = 'b' THEN SUBSTRING(e._p2, 2) = 'true' END AS _p2_boolean
  FROM u_ev AS e
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
    n._known
  FROM u_entities AS n
  LEFT JOIN u_agg AS g
    ON n.entity_id = g.entity_id
), u_f0_s0 AS (
  SELECT DISTINCT
    c.entity_id,
    c.timestamp AS _ts,
    c._p0
  FROM u_evr AS c
  WHERE
    c.event = 'Product Viewed'
    AND c.timestamp <= @as_of
    AND c.timestamp > @as_of - INTERVAL '2592000' SECOND
), u_f0_s1 AS (
  SELECT DISTINCT
    c.entity_id,
    c.timestamp AS _ts,
    c._p1
  FROM u_f0_s0 AS p
  JOIN u_evr AS c
    ON c.entity_id = p.entity_id
    AND c.timestamp > p._ts
    AND c.event = 'Product Added'
    AND c.timestamp <= @as_of
    AND c.timestamp <= p._ts + INTERVAL '86400' SECOND
    AND COALESCE(
      CASE
        WHEN c._p0_kind = 'n' AND SUBSTRING(p._p0, 1, 1) = 'n'
        THEN c._p0_num = CASE
          WHEN SUBSTRING(p._p0, 1, 1) = 'n'
          OR (
            SUBSTRING(p._p0, 1, 1) = 's'
            AND REGEXP_CONTAINS(SUBSTRING(p._p0, 2), '^-?[0-9]+(\\.[0-9]+)?([eE][-+]?[0-9]+)?$')
          )
          THEN CAST(SUBSTRING(p._p0, 2) AS FLOAT64)
        END
        WHEN c._p0_kind = 's' AND SUBSTRING(p._p0, 1, 1) = 's'
        THEN c._p0_text = CASE WHEN SUBSTRING(p._p0, 1, 1) IN ('s', 'n') THEN SUBSTRING(p._p0, 2) END
        WHEN c._p0_kind = 'b' AND SUBSTRING(p._p0, 1, 1) = 'b'
        THEN c._p0_boolean = CASE WHEN SUBSTRING(p._p0, 1, 1) = 'b' THEN SUBSTRING(p._p0, 2) = 'true' END
        ELSE CAST(NULL AS BOOL)
      END,
      FALSE
    )
), u_f0_s2 AS (
  SELECT DISTINCT
    c.entity_id,
    c.timestamp AS _ts,
    c._p2
  FROM u_f0_s1 AS p
  JOIN u_evr AS c
    ON c.entity_id = p.entity_id
    AND c.timestamp > p._ts
    AND c.event = 'Checkout Started'
    AND c.timestamp <= @as_of
    AND c.timestamp <= p._ts + INTERVAL '86400' SECOND
    AND COALESCE(
      CASE
        WHEN c._p1_kind = 'n' AND SUBSTRING(p._p1, 1, 1) = 'n'
        THEN c._p1_num = CASE
          WHEN SUBSTRING(p._p1, 1, 1) = 'n'
          OR (
            SUBSTRING(p._p1, 1, 1) = 's'
            AND REGEXP_CONTAINS(SUBSTRING(p._p1, 2), '^-?[0-9]+(\\.[0-9]+)?([eE][-+]?[0-9]+)?$')
          )
          THEN CAST(SUBSTRING(p._p1, 2) AS FLOAT64)
        END
        WHEN c._p1_kind = 's' AND SUBSTRING(p._p1, 1, 1) = 's'
        THEN c._p1_text = CASE WHEN SUBSTRING(p._p1, 1, 1) IN ('s', 'n') THEN SUBSTRING(p._p1, 2) END
        WHEN c._p1_kind = 'b' AND SUBSTRING(p._p1, 1, 1) = 'b'
        THEN c._p1_boolean = CASE WHEN SUBSTRING(p._p1, 1, 1) = 'b' THEN SUBSTRING(p._p1, 2) = 'true' END
        ELSE CAST(NULL AS BOOL)
      END,
      FALSE
    )
), u_f0_s3 AS (
  SELECT DISTINCT
    c.entity_id,
    c.timestamp AS _ts
  FROM u_f0_s2 AS p
  JOIN u_evr AS c
    ON c.entity_id = p.entity_id
    AND c.timestamp > p._ts
    AND c.event = 'Order Completed'
    AND c.timestamp <= @as_of
    AND c.timestamp <= p._ts + INTERVAL '86400' SECOND
    AND COALESCE(
      CASE
        WHEN c._p2_kind = 'n' AND SUBSTRING(p._p2, 1, 1) = 'n'
        THEN c._p2_num = CASE
          WHEN SUBSTRING(p._p2, 1, 1) = 'n'
          OR (
            SUBSTRING(p._p2, 1, 1) = 's'
            AND REGEXP_CONTAINS(SUBSTRING(p._p2, 2), '^-?[0-9]+(\\.[0-9]+)?([eE][-+]?[0-9]+)?$')
          )
          THEN CAST(SUBSTRING(p._p2, 2) AS FLOAT64)
        END
        WHEN c._p2_kind = 's' AND SUBSTRING(p._p2, 1, 1) = 's'
        THEN c._p2_text = CASE WHEN SUBSTRING(p._p2, 1, 1) IN ('s', 'n') THEN SUBSTRING(p._p2, 2) END
        WHEN c._p2_kind = 'b' AND SUBSTRING(p._p2, 1, 1) = 'b'
        THEN c._p2_boolean = CASE WHEN SUBSTRING(p._p2, 1, 1) = 'b' THEN SUBSTRING(p._p2, 2) = 'true' END
        ELSE CAST(NULL AS BOOL)
      END,
      FALSE
    )
), u_f0 AS (
  SELECT DISTINCT
    entity_id
  FROM u_f0_s3
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
    b._fu0 AS _a_viewed_then_bought_same_product
  FROM u_base AS b
)
SELECT
  entity_id
FROM u_frame
WHERE
  _a_viewed_then_bought_same_product
ORDER BY
  entity_id
