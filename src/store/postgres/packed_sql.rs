//! PostgreSQL's SQL for the packed format of `store/packed.rs`: the same records, built with
//! `string_agg` and `encode(…, 'hex')`.

use crate::store::packed::MEMBERS_PER_ROW;

/// A keyset page of a whole teamspace's members without their claims (empty claims field).
/// Parameters: teamspace id, the last oid of the previous page.
pub(in crate::store) fn members_page() -> String {
    format!(
        "SELECT string_agg(encode(oid, 'hex') || ',' || email_hash || ',' || coalesce(name_hash::text, '') || ',' \
         || attrs_source_id || ',', ';' ORDER BY oid) FROM (SELECT oid, email_hash, name_hash, attrs_source_id \
         FROM members WHERE teamspace_id = $1 AND oid > $2 ORDER BY oid LIMIT {MEMBERS_PER_ROW}) AS page"
    )
}

/// The claims of an oid range `(after, last]`, packed `oid,source;…` in (oid, source) order.
pub(in crate::store) const CLAIMS_RANGE: &str = "SELECT string_agg(encode(oid, 'hex') || ',' || source_id, ';' \
     ORDER BY oid, source_id) FROM claims WHERE teamspace_id = $1 AND oid > $2 AND oid <= $3";

/// The members among a list of oids, with their claims. Parameters: teamspace id, the oids as
/// one array.
pub(in crate::store) const OF_OIDS: &str = "SELECT string_agg(encode(m.oid, 'hex') || ',' || m.email_hash || ',' \
     || coalesce(m.name_hash::text, '') || ',' || m.attrs_source_id || ',' || coalesce((SELECT \
     string_agg(c.source_id::text, ' ') FROM claims c WHERE c.teamspace_id = m.teamspace_id AND c.oid = m.oid), ''), \
     ';' ORDER BY m.oid) FROM members m WHERE m.teamspace_id = $1 AND m.oid = ANY($2)";
