WITH u_ev AS (
  SELECT
    e.profile_id AS entity_id,
    e.timestamp AS timestamp,
    e.message_id AS message_id,
    e.seq AS seq,
    e.event AS event,
    e.properties ->> '$.category' AS _p0,
    e.properties ->> '$.product_id' AS _p1
  FROM ap_events AS e
  WHERE
    e.timestamp <= $as_of
), u_evr AS (
  SELECT
    e.*
  FROM u_ev AS e
), u_evm AS (
  SELECT
    e.*,
    e.event = 'Product Viewed'
    AND e.timestamp <= $as_of
    AND e.timestamp > $as_of - INTERVAL '5184000' SECOND AS _m1,
    e.event = 'Product Viewed'
    AND e.timestamp <= $as_of
    AND e.timestamp > $as_of - INTERVAL '2592000' SECOND AS _m2
  FROM u_evr AS e
), u_agg AS (
  SELECT
    entity_id,
    CAST(COUNT(DISTINCT CASE WHEN _m2 THEN SUBSTRING(_p1, 2) END) AS BIGINT) AS _tr_products_viewed_30d
  FROM u_evm
  GROUP BY
    entity_id
), u_mf0 AS (
  SELECT
    entity_id,
    _value AS _tr_favorite_category
  FROM (
    SELECT
      entity_id,
      _value,
      ROW_NUMBER() OVER (PARTITION BY entity_id ORDER BY _n DESC, _value) AS _rn
    FROM (
      SELECT
        entity_id,
        CASE WHEN _m1 THEN SUBSTRING(_p0, 2) END AS _value,
        COUNT(*) AS _n
      FROM u_evm
      WHERE
        NOT CASE WHEN _m1 THEN SUBSTRING(_p0, 2) END IS NULL
      GROUP BY
        entity_id,
        CASE WHEN _m1 THEN SUBSTRING(_p0, 2) END
      HAVING
        COUNT(*) >= 3
    ) AS c
  ) AS r
  WHERE
    _rn = 1
), u_entities AS (
  SELECT
    profile_id AS entity_id,
    known AS _known
  FROM ap_profiles
), u_traits AS (
  SELECT
    n.entity_id,
    n._known,
    COALESCE(g._tr_products_viewed_30d, 0) AS _tr_products_viewed_30d,
    mf0._tr_favorite_category AS _tr_favorite_category
  FROM u_entities AS n
  LEFT JOIN u_agg AS g
    ON n.entity_id = g.entity_id
  LEFT JOIN u_mf0 AS mf0
    ON n.entity_id = mf0.entity_id
), u_base AS (
  SELECT
    t.*
  FROM u_traits AS t
), u_frame AS (
  SELECT
    b.*,
    COALESCE(
      b._tr_favorite_category = 'Electronics'
      AND CAST(b._tr_products_viewed_30d AS DOUBLE) >= CAST(3 AS DOUBLE),
      FALSE
    ) AS _a_electronics_fans
  FROM u_base AS b
)
SELECT
  entity_id
FROM u_frame
WHERE
  _a_electronics_fans
ORDER BY
  entity_id
