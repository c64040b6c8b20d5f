//! Loading the planner's view of a teamspace fast. sqlx hands every result row from its
//! SQLite worker thread to the caller through a channel, which at a million members costs
//! more than the query itself (measured: 7.7 s). So SQLite packs thousands of members into one
//! text row — numbers only: hex oid, attribute fingerprints, source ids — and we parse it.

use smallvec::SmallVec;

use super::StoreError;
use crate::domain::Oid;
use crate::plan::CurrentMember;

/// Members per packed row (about 1 MiB of text).
pub const MEMBERS_PER_ROW: i64 = 16_384;

/// The packed expression for members aliased `m`: `oid,email_hash,name_hash,attrs_source,claims`
/// per member (claims space-separated), members separated by `;`, in oid order.
pub const PACKED_MEMBERS: &str = "group_concat(hex(m.oid) || ',' || m.email_hash || ',' || ifnull(m.name_hash, '') \
     || ',' || m.attrs_source_id || ',' || ifnull((SELECT group_concat(c.source_id, ' ') FROM claims c \
     WHERE c.teamspace_id = m.teamspace_id AND c.oid = m.oid), ''), ';' ORDER BY m.oid)";

fn corrupt(record: &str) -> StoreError {
    StoreError::corrupt(
        "members (packed)",
        format!("unreadable record `{}`", record.chars().take(80).collect::<String>()),
    )
}

/// Parses one packed row, appending to `members`.
pub fn unpack(text: &str, members: &mut Vec<CurrentMember>) -> Result<(), StoreError> {
    for record in text.split(';').filter(|r| !r.is_empty()) {
        let mut fields = record.split(',');
        let mut next = || fields.next().ok_or_else(|| corrupt(record));
        let oid = u128::from_str_radix(next()?, 16).map(Oid::from_u128).map_err(|_| corrupt(record))?;
        let email_hash = next()?.parse().map_err(|_| corrupt(record))?;
        let name_hash = match next()? {
            "" => None,
            hash => Some(hash.parse().map_err(|_| corrupt(record))?),
        };
        let attrs_source = next()?.parse().map_err(|_| corrupt(record))?;
        let claims = next()?
            .split(' ')
            .filter(|c| !c.is_empty())
            .map(|c| c.parse().map_err(|_| corrupt(record)))
            .collect::<Result<SmallVec<_>, _>>()?;
        members.push(CurrentMember { oid, email_hash, name_hash, attrs_source, claims });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpacks_members_with_and_without_names() {
        let mut members = Vec::new();
        unpack("000000000000000000000000000000FF,-5,,3,3 7;00000000000000000000000000000100,9,12,7,7", &mut members)
            .unwrap();
        assert_eq!(members.len(), 2);
        assert_eq!(members[0].oid, Oid::from_u128(255));
        assert_eq!((members[0].email_hash, members[0].name_hash), (-5, None));
        assert_eq!(members[0].claims.as_slice(), [3, 7]);
        assert_eq!(members[1].name_hash, Some(12));
        assert!(unpack("zz,1,,1,1", &mut members).is_err());
        assert!(unpack("000000000000000000000000000000FF,1", &mut members).is_err());
    }
}
