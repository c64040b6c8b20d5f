//! Loading the planner's view of a teamspace fast. sqlx hands every result row from its
//! SQLite worker thread to the caller through a channel, which at a million members costs
//! more than the query itself (measured: 7.7 s). So SQLite packs thousands of members into one
//! text row — numbers only: hex oid, attribute fingerprints, source ids — and we parse it.
//! PostgreSQL packs the same format (one round trip per page instead of one message per
//! row), so one parser serves both; each engine's SQL is in its own module (`packed_sql`).

use smallvec::SmallVec;

use super::StoreError;
use crate::domain::Oid;
use crate::plan::CurrentMember;

/// Members per packed row (about 1 MiB of text).
pub const MEMBERS_PER_ROW: i64 = 16_384;

/// Attaches packed claims (`oid,source;…`, oid order) to `members` (oid order).
pub fn attach_claims(text: &str, members: &mut [CurrentMember]) -> Result<(), StoreError> {
    let mut members = members.iter_mut().peekable();
    for record in text.split(';').filter(|r| !r.is_empty()) {
        let (oid, source) = record.split_once(',').ok_or_else(|| corrupt(record))?;
        let oid = u128::from_str_radix(oid, 16).map(Oid::from_u128).map_err(|_| corrupt(record))?;
        let source = source.parse().map_err(|_| corrupt(record))?;
        // Claims without a member are skipped here and reported by Store::check_integrity.
        while members.next_if(|m| m.oid < oid).is_some() {}
        if let Some(member) = members.peek_mut().filter(|m| m.oid == oid) {
            member.claims.push(source);
        }
    }
    Ok(())
}

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
        let mut bare = Vec::new();
        unpack("000000000000000000000000000000FF,1,,3,;00000000000000000000000000000100,2,,3,", &mut bare).unwrap();
        attach_claims(
            "000000000000000000000000000000F0,9;000000000000000000000000000000FF,3;000000000000000000000000000000FF,7",
            &mut bare,
        )
        .unwrap();
        assert_eq!(bare[0].claims.as_slice(), [3, 7]);
        assert!(bare[1].claims.is_empty());
        assert!(unpack("000000000000000000000000000000FF,1", &mut members).is_err());
    }
}
