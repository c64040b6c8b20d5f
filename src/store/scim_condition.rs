//! The part of a SCIM filter the store can answer from its indexes, as a typed condition the
//! SCIM layer builds and only the store turns into SQL: which columns hold which attribute,
//! and how each engine reaches into a stored body, stay here.

use super::engine::Engine;
use super::scim::ResourceKind;
use super::StoreError;

/// An attribute of a stored resource that a look-up can be answered from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexedAttribute {
    /// `id`, exact.
    Id,
    /// `externalId`, exact.
    ExternalId,
    /// A User's `userName`, case-insensitive.
    UserName,
    /// A User's `emails[].value`, case-insensitive.
    EmailValue,
    /// A Group's `displayName`, case-insensitive.
    DisplayName,
    /// A Group's `members[].value`, exact.
    MemberValue,
}

impl IndexedAttribute {
    /// Whether the store compares it case-insensitively. Its keys are lower-cased the way
    /// `str::to_lowercase` does, which agrees with SQL's `lower()` only for ASCII: the SCIM layer
    /// pushes down only ASCII values of these.
    pub fn ignores_case(self) -> bool {
        matches!(self, IndexedAttribute::UserName | IndexedAttribute::EmailValue | IndexedAttribute::DisplayName)
    }

    /// Whether resources of `kind` have it.
    pub fn belongs_to(self, kind: ResourceKind) -> bool {
        match self {
            IndexedAttribute::Id | IndexedAttribute::ExternalId => true,
            IndexedAttribute::UserName | IndexedAttribute::EmailValue => kind == ResourceKind::User,
            IndexedAttribute::DisplayName | IndexedAttribute::MemberValue => kind == ResourceKind::Group,
        }
    }
}

/// A condition over indexed attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScimCondition {
    /// Both hold.
    And(Box<ScimCondition>, Box<ScimCondition>),
    /// Either holds.
    Or(Box<ScimCondition>, Box<ScimCondition>),
    /// The attribute (some value of it, for a multi-valued one) equals the text.
    Equals(IndexedAttribute, String),
}

/// The SQL being built for a condition and its arguments, bound as `$first`, `$first + 1`, …
/// in `args` order.
pub(super) struct Rendering {
    pub(super) engine: Engine,
    pub(super) first: usize,
    pub(super) sql: String,
    pub(super) args: Vec<String>,
}

impl Rendering {
    pub(super) fn new(engine: Engine, first: usize) -> Self {
        Rendering { engine, first, sql: String::new(), args: Vec::new() }
    }

    /// The placeholder the next argument will be bound to.
    pub(super) fn next_param(&self) -> usize {
        self.first + self.args.len()
    }
}

/// `condition` as SQL over the resource table aliased `r`, appended to `out`. A condition
/// naming an attribute `kind` does not have is a caller's bug, refused rather than answered
/// with an empty list.
pub(super) fn render(condition: &ScimCondition, kind: ResourceKind, out: &mut Rendering) -> Result<(), StoreError> {
    match condition {
        ScimCondition::And(a, b) | ScimCondition::Or(a, b) => {
            let connective = if matches!(condition, ScimCondition::And(..)) { " AND " } else { " OR " };
            out.sql.push('(');
            render(a, kind, out)?;
            out.sql.push_str(connective);
            render(b, kind, out)?;
            out.sql.push(')');
        }
        ScimCondition::Equals(attribute, value) => {
            if !attribute.belongs_to(kind) {
                return Err(StoreError::Refused(format!("{kind:?} resources have no indexed {attribute:?}")));
            }
            let n = out.next_param();
            let sql = match attribute {
                IndexedAttribute::Id => format!("r.id = ${n}"),
                IndexedAttribute::ExternalId => format!("r.external_id = ${n}"),
                IndexedAttribute::UserName => format!("r.user_name_key = ${n}"),
                IndexedAttribute::DisplayName => format!("r.display_name_key = ${n}"),
                IndexedAttribute::EmailValue => match out.engine {
                    Engine::Sqlite => format!(
                        "EXISTS (SELECT 1 FROM json_each(r.resource, '$.emails') e \
                         WHERE lower(json_extract(e.value, '$.value')) = ${n})"
                    ),
                    // A body whose `emails` is not an array has no address to match (SQLite's
                    // json_each likewise yields nothing for it).
                    Engine::Postgres => format!(
                        "EXISTS (SELECT 1 FROM jsonb_array_elements(CASE WHEN jsonb_typeof(r.resource::jsonb -> 'emails') \
                         = 'array' THEN r.resource::jsonb -> 'emails' ELSE '[]'::jsonb END) e \
                         WHERE lower(e ->> 'value') = ${n})"
                    ),
                },
                IndexedAttribute::MemberValue => format!(
                    "EXISTS (SELECT 1 FROM scim_group_members m \
                     WHERE m.teamspace_id = r.teamspace_id AND m.group_id = r.id AND m.member_id = ${n})"
                ),
            };
            out.sql.push_str(&sql);
            out.args.push(if attribute.ignores_case() { value.to_lowercase() } else { value.clone() });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sql_of(condition: &ScimCondition, kind: ResourceKind) -> Result<(String, Vec<String>), StoreError> {
        let mut out = Rendering::new(Engine::Sqlite, 2);
        render(condition, kind, &mut out)?;
        Ok((out.sql, out.args))
    }

    #[test]
    fn case_insensitive_attributes_compare_lower_cased_keys() {
        let user_name = ScimCondition::Equals(IndexedAttribute::UserName, "Ada@Contoso.com".into());
        assert_eq!(
            sql_of(&user_name, ResourceKind::User).unwrap(),
            ("r.user_name_key = $2".to_owned(), vec!["ada@contoso.com".to_owned()])
        );
        let external = ScimCondition::Equals(IndexedAttribute::ExternalId, "AbC".into());
        assert_eq!(sql_of(&external, ResourceKind::User).unwrap().1, vec!["AbC".to_owned()]);
    }

    #[test]
    fn connectives_nest_with_their_arguments_in_order() {
        let both = ScimCondition::Or(
            Box::new(ScimCondition::Equals(IndexedAttribute::Id, "1".into())),
            Box::new(ScimCondition::And(
                Box::new(ScimCondition::Equals(IndexedAttribute::DisplayName, "Devs".into())),
                Box::new(ScimCondition::Equals(IndexedAttribute::MemberValue, "u".into())),
            )),
        );
        let (sql, args) = sql_of(&both, ResourceKind::Group).unwrap();
        assert!(sql.starts_with("(r.id = $2 OR (r.display_name_key = $3 AND EXISTS"), "{sql}");
        assert_eq!(args, ["1", "devs", "u"]);
    }

    #[test]
    fn an_attribute_of_the_other_kind_is_refused() {
        let wrong = ScimCondition::Equals(IndexedAttribute::MemberValue, "u".into());
        assert!(matches!(sql_of(&wrong, ResourceKind::User), Err(StoreError::Refused(_))));
    }
}
