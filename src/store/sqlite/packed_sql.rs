//! SQLite's SQL for the packed format of `store/packed.rs`.

use crate::store::packed::MEMBERS_PER_ROW;
use crate::store::values::values_list;

/// A keyset page of a whole teamspace's members without their claims (empty claims field).
/// Parameters: teamspace id, the last oid of the previous page.
pub(in crate::store) fn members_page() -> String {
    format!(
        "SELECT group_concat(hex(oid) || ',' || email_hash || ',' || ifnull(name_hash, '') || ',' || attrs_source_id \
         || ',', ';' ORDER BY oid) FROM (SELECT oid, email_hash, name_hash, attrs_source_id FROM members \
         WHERE teamspace_id = ? AND oid > ? ORDER BY oid LIMIT {MEMBERS_PER_ROW})"
    )
}

/// The claims of an oid range `(after, last]`, packed `oid,source;…` in (oid, source) order: a
/// sequential scan of the claims table, cheaper than a seek per member.
pub(in crate::store) const CLAIMS_RANGE: &str =
    "SELECT group_concat(hex(oid) || ',' || source_id, ';' ORDER BY oid, source_id) \
     FROM claims WHERE teamspace_id = ? AND oid > ? AND oid <= ?";

/// The members among `count` oids, with their claims (an index seek per member: for small
/// sets). Parameters: teamspace id, then each oid.
pub(in crate::store) fn of_oids(count: usize) -> String {
    format!(
        "SELECT group_concat(hex(m.oid) || ',' || m.email_hash || ',' || ifnull(m.name_hash, '') \
         || ',' || m.attrs_source_id || ',' || ifnull((SELECT group_concat(c.source_id, ' ') FROM claims c \
         WHERE c.teamspace_id = m.teamspace_id AND c.oid = m.oid), ''), ';' ORDER BY m.oid) \
         FROM members m WHERE m.teamspace_id = ? AND m.oid IN ({})",
        values_list("?", count)
    )
}
