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
), u_evr AS (
  SELECT
    e.*
  FROM u_ev AS e
), u_evm AS (
  SELECT
    e.*,
    TRUE
    AND e.timestamp <= @as_of
    AND e.timestamp > @as_of - INTERVAL '7776000' SECOND AS _m1
  FROM u_evr AS e
), u_agg AS (
  SELECT
    entity_id,
    CASE
      WHEN SUM(CASE WHEN _m1 THEN 1 ELSE 0 END) > 0
      THEN CAST(COUNT(DISTINCT CASE WHEN _m1 THEN DATE(timestamp, 'UTC') END) AS FLOAT64)
    END AS _tr_engagement_frequency,
    CASE
      WHEN SUM(CASE WHEN _m1 THEN 1 ELSE 0 END) > 0
      THEN 3 * CAST(SUM(
        CASE WHEN _m1 AND timestamp > @as_of - INTERVAL '2592000' SECOND THEN 1 ELSE 0 END
      ) AS FLOAT64) - 1.5 * CAST(SUM(
        CASE WHEN _m1 AND timestamp <= @as_of - INTERVAL '2592000' SECOND THEN 1 ELSE 0 END
      ) AS FLOAT64)
    END AS _tr_engagement_momentum
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
    CAST(CASE
      WHEN g._tr_engagement_frequency IS NULL
      THEN NULL
      WHEN COUNT(g._tr_engagement_frequency) OVER () = 1
      THEN 100
      ELSE FLOOR(
        CAST(200 * (
          RANK() OVER (ORDER BY g._tr_engagement_frequency NULLS LAST) - 1
        ) + (
          COUNT(g._tr_engagement_frequency) OVER () - 1
        ) AS FLOAT64) / CAST(2 * (
          COUNT(g._tr_engagement_frequency) OVER () - 1
        ) AS FLOAT64)
      )
    END AS INT64) AS _tr_engagement_frequency,
    CAST(CASE
      WHEN g._tr_engagement_momentum IS NULL
      THEN NULL
      WHEN COUNT(g._tr_engagement_momentum) OVER () = 1
      THEN 100
      ELSE FLOOR(
        CAST(200 * (
          RANK() OVER (ORDER BY g._tr_engagement_momentum NULLS LAST) - 1
        ) + (
          COUNT(g._tr_engagement_momentum) OVER () - 1
        ) AS FLOAT64) / CAST(2 * (
          COUNT(g._tr_engagement_momentum) OVER () - 1
        ) AS FLOAT64)
      )
    END AS INT64) AS _tr_engagement_momentum
  FROM u_entities AS n
  LEFT JOIN u_agg AS g
    ON n.entity_id = g.entity_id
), u_base AS (
  SELECT
    t.*
  FROM u_traits AS t
), u_frame AS (
  SELECT
    b.*,
    COALESCE(
      CAST(b._tr_engagement_momentum AS FLOAT64) > CAST(50 AS FLOAT64)
      AND CAST(b._tr_engagement_frequency AS FLOAT64) < CAST(25 AS FLOAT64),
      FALSE
    ) AS _a_rising_occasional_users
  FROM u_base AS b
)
SELECT
  entity_id
FROM u_frame
WHERE
  _a_rising_occasional_users
ORDER BY
  entity_id
