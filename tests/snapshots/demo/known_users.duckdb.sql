WITH u_ev AS (
  SELECT
    e.profile_id AS entity_id,
    e.timestamp AS timestamp,
    e.message_id AS message_id,
    e.seq AS seq,
    e.event AS event
  FROM ap_events AS e
  WHERE
    e.timestamp <= $as_of
), u_evr AS (
  SELECT
    e.*
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
), u_base AS (
  SELECT
    t.*
  FROM u_traits AS t
), u_frame AS (
  SELECT
    b.*,
    b._known AND TRUE AS _a_known_users
  FROM u_base AS b
)
SELECT
  entity_id
FROM u_frame
WHERE
  _a_known_users
ORDER BY
  entity_id
