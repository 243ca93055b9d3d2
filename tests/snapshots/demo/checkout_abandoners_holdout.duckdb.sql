WITH u_ev AS (
  SELECT
    e.profile_id AS entity_id,
    e.timestamp AS timestamp,
    e.message_id AS message_id,
    e.seq AS seq,
    e.event AS event,
    e.properties ->> '$.order_id' AS _p0
  FROM ap_events AS e
  WHERE
    e.timestamp <= $as_of
), u_evr AS (
  SELECT
    e.*,
    SUBSTRING(e._p0, 1, 1) AS _p0_kind,
    CASE
      WHEN SUBSTRING(e._p0, 1, 1) = 'n'
      OR (
        SUBSTRING(e._p0, 1, 1) = 's'
        AND REGEXP_MATCHES(SUBSTRING(e._p0, 2), '^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$')
      )
      THEN CAST(SUBSTRING(e._p0, 2) AS DOUBLE)
    END AS _p0_num,
    CASE WHEN SUBSTRING(e._p0, 1, 1) IN ('s', 'n') THEN SUBSTRING(e._p0, 2) END AS _p0_text,
    CASE WHEN SUBSTRING(e._p0, 1, 1) = 'b' THEN SUBSTRING(e._p0, 2) = 'true' END AS _p0_boolean
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
    c.event = 'Checkout Started'
    AND c.timestamp <= $as_of
    AND c.timestamp > $as_of - INTERVAL '1209600' SECOND
), u_f0_matched AS (
  SELECT DISTINCT
    p.entity_id,
    p._ts,
    p._p0
  FROM u_f0_s0 AS p
  JOIN u_evr AS c
    ON c.entity_id = p.entity_id
    AND c.timestamp > p._ts
    AND c.event = 'Order Completed'
    AND c.timestamp <= $as_of
    AND c.timestamp <= p._ts + INTERVAL '86400' SECOND
    AND COALESCE(
      CASE
        WHEN c._p0_kind = 'n' AND SUBSTRING(p._p0, 1, 1) = 'n'
        THEN c._p0_num = CASE
          WHEN SUBSTRING(p._p0, 1, 1) = 'n'
          OR (
            SUBSTRING(p._p0, 1, 1) = 's'
            AND REGEXP_MATCHES(SUBSTRING(p._p0, 2), '^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$')
          )
          THEN CAST(SUBSTRING(p._p0, 2) AS DOUBLE)
        END
        WHEN c._p0_kind = 's' AND SUBSTRING(p._p0, 1, 1) = 's'
        THEN c._p0_text = CASE WHEN SUBSTRING(p._p0, 1, 1) IN ('s', 'n') THEN SUBSTRING(p._p0, 2) END
        WHEN c._p0_kind = 'b' AND SUBSTRING(p._p0, 1, 1) = 'b'
        THEN c._p0_boolean = CASE WHEN SUBSTRING(p._p0, 1, 1) = 'b' THEN SUBSTRING(p._p0, 2) = 'true' END
        ELSE CAST(NULL AS BOOLEAN)
      END,
      FALSE
    )
), u_f0 AS (
  SELECT DISTINCT
    p.entity_id
  FROM u_f0_s0 AS p
  LEFT JOIN u_f0_matched AS m
    ON p.entity_id IS NOT DISTINCT FROM m.entity_id
    AND p._ts IS NOT DISTINCT FROM m._ts
    AND p._p0 IS NOT DISTINCT FROM m._p0
  WHERE
    m.entity_id IS NULL
), u_anchors AS (
  SELECT
    i.profile_id AS entity_id,
    i.id_type,
    i.id_value
  FROM (
    SELECT
      profile_id,
      id_type,
      id_value,
      ROW_NUMBER() OVER (
        PARTITION BY profile_id
        ORDER BY CASE
          WHEN id_type = 'user_id'
          THEN 0
          WHEN id_type = 'email'
          THEN 1
          WHEN id_type = 'anonymous_id'
          THEN 2
          ELSE 3
        END, id_value
      ) AS _rn
    FROM ap_identities
  ) AS i
  WHERE
    i._rn = 1
), u_buckets AS (
  SELECT
    entity_id,
    (
      (
        STRPOS(
          '0123456789abcdef',
          SUBSTRING(SHA256('checkout_recovery_2026:' || id_type || ':' || id_value), 1, 1)
        ) - 1
      ) * 6976 + (
        STRPOS(
          '0123456789abcdef',
          SUBSTRING(SHA256('checkout_recovery_2026:' || id_type || ':' || id_value), 2, 1)
        ) - 1
      ) * 7936 + (
        STRPOS(
          '0123456789abcdef',
          SUBSTRING(SHA256('checkout_recovery_2026:' || id_type || ':' || id_value), 3, 1)
        ) - 1
      ) * 496 + (
        STRPOS(
          '0123456789abcdef',
          SUBSTRING(SHA256('checkout_recovery_2026:' || id_type || ':' || id_value), 4, 1)
        ) - 1
      ) * 656 + (
        STRPOS(
          '0123456789abcdef',
          SUBSTRING(SHA256('checkout_recovery_2026:' || id_type || ':' || id_value), 5, 1)
        ) - 1
      ) * 4416 + (
        STRPOS(
          '0123456789abcdef',
          SUBSTRING(SHA256('checkout_recovery_2026:' || id_type || ':' || id_value), 6, 1)
        ) - 1
      ) * 7776 + (
        STRPOS(
          '0123456789abcdef',
          SUBSTRING(SHA256('checkout_recovery_2026:' || id_type || ':' || id_value), 7, 1)
        ) - 1
      ) * 6736 + (
        STRPOS(
          '0123456789abcdef',
          SUBSTRING(SHA256('checkout_recovery_2026:' || id_type || ':' || id_value), 8, 1)
        ) - 1
      ) * 7296 + (
        STRPOS(
          '0123456789abcdef',
          SUBSTRING(SHA256('checkout_recovery_2026:' || id_type || ':' || id_value), 9, 1)
        ) - 1
      ) * 5456 + (
        STRPOS(
          '0123456789abcdef',
          SUBSTRING(SHA256('checkout_recovery_2026:' || id_type || ':' || id_value), 10, 1)
        ) - 1
      ) * 7216 + (
        STRPOS(
          '0123456789abcdef',
          SUBSTRING(SHA256('checkout_recovery_2026:' || id_type || ':' || id_value), 11, 1)
        ) - 1
      ) * 8576 + (
        STRPOS(
          '0123456789abcdef',
          SUBSTRING(SHA256('checkout_recovery_2026:' || id_type || ':' || id_value), 12, 1)
        ) - 1
      ) * 5536 + (
        STRPOS(
          '0123456789abcdef',
          SUBSTRING(SHA256('checkout_recovery_2026:' || id_type || ':' || id_value), 13, 1)
        ) - 1
      ) * 4096 + (
        STRPOS(
          '0123456789abcdef',
          SUBSTRING(SHA256('checkout_recovery_2026:' || id_type || ':' || id_value), 14, 1)
        ) - 1
      ) * 256 + (
        STRPOS(
          '0123456789abcdef',
          SUBSTRING(SHA256('checkout_recovery_2026:' || id_type || ':' || id_value), 15, 1)
        ) - 1
      ) * 16 + (
        STRPOS(
          '0123456789abcdef',
          SUBSTRING(SHA256('checkout_recovery_2026:' || id_type || ':' || id_value), 16, 1)
        ) - 1
      ) * 1
    ) % 10000 AS _sb0
  FROM u_anchors
), u_base AS (
  SELECT
    t.*,
    NOT fu0.entity_id IS NULL AS _fu0,
    COALESCE((
      sb._sb0 >= 0 AND sb._sb0 < 1000
    ), FALSE) AS _su1
  FROM u_traits AS t
  LEFT JOIN u_f0 AS fu0
    ON t.entity_id = fu0.entity_id
  LEFT JOIN u_buckets AS sb
    ON t.entity_id = sb.entity_id
), u_frame AS (
  SELECT
    b.*,
    b._fu0 AS _a_checkout_abandoners,
    (
      b._fu0
    ) AND b._su1 AS _a_checkout_abandoners_holdout
  FROM u_base AS b
)
SELECT
  entity_id
FROM u_frame
WHERE
  _a_checkout_abandoners_holdout
ORDER BY
  entity_id
