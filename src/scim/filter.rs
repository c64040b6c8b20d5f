//! SCIM filters (RFC 7644 §3.4.2.2) and PATCH paths (§3.5.2): a parser for the whole grammar,
//! an evaluator over a resource's JSON that honours each attribute's `caseExact`, and a
//! translation of the filters Entra sends (`userName eq`, `externalId eq`, ...) into conditions
//! the store answers from its indexes.

use serde_json::Value;

use super::schema::{Attribute, ResourceType, Type, GROUPS, USERS};
use crate::store::{IndexedAttribute, ScimCondition};

/// Longest filter accepted, in bytes.
pub const MAX_FILTER_LEN: usize = 10_000;
/// Deepest nesting of parentheses, `not` and value paths.
pub const MAX_DEPTH: usize = 32;
/// Most `and`/`or` a filter may combine: Entra sends one or two; a chain of hundreds nests as
/// deep in SQL, where SQLite's expression-depth limit makes it a 500.
pub const MAX_CONNECTIVES: usize = 100;

/// An attribute path: `[urn:]name[.sub]`.
#[derive(Debug, Clone, PartialEq)]
pub struct AttrPath {
    /// The schema URN when written qualified.
    pub urn: Option<String>,
    /// The attribute.
    pub name: String,
    /// The sub-attribute.
    pub sub: Option<String>,
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// equal
    Eq,
    /// not equal
    Ne,
    /// contains
    Co,
    /// starts with
    Sw,
    /// ends with
    Ew,
    /// greater than
    Gt,
    /// greater or equal
    Ge,
    /// less than
    Lt,
    /// less or equal
    Le,
}

/// A literal.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// A JSON string.
    Str(String),
    /// A JSON number.
    Num(f64),
    /// true / false.
    Bool(bool),
    /// null.
    Null,
}

/// A parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// Both.
    And(Box<Filter>, Box<Filter>),
    /// Either.
    Or(Box<Filter>, Box<Filter>),
    /// Negation.
    Not(Box<Filter>),
    /// `attr pr`.
    Present(AttrPath),
    /// `attr op value`.
    Compare(AttrPath, Op, Literal),
    /// `attr[filter]`: some value of the multi-valued attribute matches the inner filter,
    /// whose paths name sub-attributes.
    ValuePath(AttrPath, Box<Filter>),
}

/// A PATCH operation's target: `attrPath`, or `attrPath[filter][.sub]`.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchPath {
    /// The attribute (with `sub` set for `name.givenName`).
    pub attr: AttrPath,
    /// The value filter of `emails[type eq "work"]`.
    pub filter: Option<Filter>,
    /// The sub-attribute after a value filter: `.value` in `emails[type eq "work"].value`.
    pub sub_after_filter: Option<String>,
}

/// Why a filter or path does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Str(String),
    Num(f64),
    Open,
    Close,
    OpenBracket,
    CloseBracket,
    /// `.` directly after `]`.
    Dot,
}

fn tokenize(text: &str) -> Result<Vec<Token>, ParseError> {
    let mut tokens = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'(' => {
                tokens.push(Token::Open);
                i += 1;
            }
            b')' => {
                tokens.push(Token::Close);
                i += 1;
            }
            b'[' => {
                tokens.push(Token::OpenBracket);
                i += 1;
            }
            b']' => {
                tokens.push(Token::CloseBracket);
                i += 1;
            }
            b'.' if matches!(tokens.last(), Some(Token::CloseBracket)) => {
                tokens.push(Token::Dot);
                i += 1;
            }
            b'"' => {
                // A JSON string: let serde handle the escapes.
                let start = i;
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                if i >= bytes.len() {
                    return Err(ParseError(format!("unterminated string starting at offset {start}")));
                }
                i += 1;
                let literal: String = serde_json::from_str(&text[start..i])
                    .map_err(|e| ParseError(format!("bad string at offset {start}: {e}")))?;
                tokens.push(Token::Str(literal));
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                i += 1;
                while i < bytes.len() && matches!(bytes[i], b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-') {
                    i += 1;
                }
                let number = text[start..i]
                    .parse::<f64>()
                    .map_err(|_| ParseError(format!("`{}` is not a number", &text[start..i])))?;
                tokens.push(Token::Num(number));
            }
            c if c.is_ascii_alphabetic() || c == b'$' || c == b'_' => {
                let start = i;
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric() || matches!(bytes[i], b'$' | b'_' | b'-' | b':' | b'.'))
                {
                    i += 1;
                }
                tokens.push(Token::Word(text[start..i].to_owned()));
            }
            _ => {
                let shown = text[i..].chars().next().unwrap_or('?');
                return Err(ParseError(format!("unexpected `{shown}` at offset {i}")));
            }
        }
    }
    Ok(tokens)
}

fn attr_path(word: &str) -> Result<AttrPath, ParseError> {
    let bad = || ParseError(format!("`{word}` is not an attribute path"));
    let (urn, rest) = if word.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("urn:")) {
        let colon = word.rfind(':').ok_or_else(bad)?;
        (Some(word[..colon].to_owned()), &word[colon + 1..])
    } else {
        (None, word)
    };
    let (name, sub) = match rest.split_once('.') {
        Some((name, sub)) => (name, Some(sub)),
        None => (rest, None),
    };
    let valid = |s: &str| {
        !s.is_empty()
            && s.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '$')
            && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '$' | '_' | '-'))
    };
    if !valid(name) || sub.is_some_and(|s| !valid(s)) {
        return Err(bad());
    }
    Ok(AttrPath { urn, name: name.to_owned(), sub: sub.map(str::to_owned) })
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    depth: usize,
    connectives: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        token
    }

    fn keyword(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Token::Word(w)) if w.eq_ignore_ascii_case(word))
    }

    fn connective(&mut self) -> Result<(), ParseError> {
        self.at += 1;
        self.connectives += 1;
        if self.connectives > MAX_CONNECTIVES {
            return Err(ParseError(format!("the filter combines more than {MAX_CONNECTIVES} `and`/`or`")));
        }
        Ok(())
    }

    fn deeper(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(ParseError(format!("the filter nests deeper than {MAX_DEPTH} levels")));
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Filter, ParseError> {
        let mut left = self.and()?;
        while self.keyword("or") {
            self.connective()?;
            left = Filter::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Filter, ParseError> {
        let mut left = self.unary()?;
        while self.keyword("and") {
            self.connective()?;
            left = Filter::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Filter, ParseError> {
        if self.keyword("not") {
            self.at += 1;
            self.deeper()?;
            if self.next() != Some(Token::Open) {
                return Err(ParseError("`not` must be followed by `(`".into()));
            }
            let inner = self.or()?;
            self.expect(Token::Close, "`)`")?;
            self.depth -= 1;
            return Ok(Filter::Not(Box::new(inner)));
        }
        if self.peek() == Some(&Token::Open) {
            self.at += 1;
            self.deeper()?;
            let inner = self.or()?;
            self.expect(Token::Close, "`)`")?;
            self.depth -= 1;
            return Ok(inner);
        }
        self.attribute_expression()
    }

    fn expect(&mut self, token: Token, what: &str) -> Result<(), ParseError> {
        match self.next() {
            Some(found) if found == token => Ok(()),
            Some(found) => Err(ParseError(format!("expected {what}, found {found:?}"))),
            None => Err(ParseError(format!("expected {what} at the end"))),
        }
    }

    fn attribute_expression(&mut self) -> Result<Filter, ParseError> {
        let path = match self.next() {
            Some(Token::Word(word)) => attr_path(&word)?,
            Some(other) => return Err(ParseError(format!("expected an attribute, found {other:?}"))),
            None => return Err(ParseError("expected an attribute at the end".into())),
        };
        if self.peek() == Some(&Token::OpenBracket) {
            self.at += 1;
            self.deeper()?;
            let inner = self.or()?;
            self.expect(Token::CloseBracket, "`]`")?;
            self.depth -= 1;
            return Ok(Filter::ValuePath(path, Box::new(inner)));
        }
        let operator = match self.next() {
            Some(Token::Word(op)) => op.to_ascii_lowercase(),
            _ => return Err(ParseError(format!("expected an operator after `{}`", path.name))),
        };
        let op = match operator.as_str() {
            "pr" => return Ok(Filter::Present(path)),
            "eq" => Op::Eq,
            "ne" => Op::Ne,
            "co" => Op::Co,
            "sw" => Op::Sw,
            "ew" => Op::Ew,
            "gt" => Op::Gt,
            "ge" => Op::Ge,
            "lt" => Op::Lt,
            "le" => Op::Le,
            other => return Err(ParseError(format!("`{other}` is not an operator"))),
        };
        let value = match self.next() {
            Some(Token::Str(s)) => Literal::Str(s),
            Some(Token::Num(n)) => Literal::Num(n),
            Some(Token::Word(w)) if w == "true" => Literal::Bool(true),
            Some(Token::Word(w)) if w == "false" => Literal::Bool(false),
            Some(Token::Word(w)) if w == "null" => Literal::Null,
            Some(other) => return Err(ParseError(format!("expected a value, found {other:?}"))),
            None => return Err(ParseError("expected a value at the end".into())),
        };
        Ok(Filter::Compare(path, op, value))
    }
}

/// Parses a filter.
pub fn parse(text: &str) -> Result<Filter, ParseError> {
    if text.len() > MAX_FILTER_LEN {
        return Err(ParseError(format!("the filter is longer than {MAX_FILTER_LEN} bytes")));
    }
    let mut parser = Parser { tokens: tokenize(text)?, at: 0, depth: 0, connectives: 0 };
    let filter = parser.or()?;
    match parser.peek() {
        None => Ok(filter),
        Some(extra) => Err(ParseError(format!("unexpected {extra:?} after the filter"))),
    }
}

/// Parses a PATCH path.
pub fn parse_path(text: &str) -> Result<PatchPath, ParseError> {
    if text.len() > MAX_FILTER_LEN {
        return Err(ParseError(format!("the path is longer than {MAX_FILTER_LEN} bytes")));
    }
    let mut parser = Parser { tokens: tokenize(text)?, at: 0, depth: 0, connectives: 0 };
    let attr = match parser.next() {
        Some(Token::Word(word)) => attr_path(&word)?,
        _ => return Err(ParseError(format!("`{text}` is not an attribute path"))),
    };
    let mut path = PatchPath { attr, filter: None, sub_after_filter: None };
    if parser.peek() == Some(&Token::OpenBracket) {
        parser.at += 1;
        path.filter = Some(parser.or()?);
        parser.expect(Token::CloseBracket, "`]`")?;
        if parser.peek() == Some(&Token::Dot) {
            parser.at += 1;
            match parser.next() {
                Some(Token::Word(sub)) if attr_path(&sub).is_ok_and(|p| p.sub.is_none() && p.urn.is_none()) => {
                    path.sub_after_filter = Some(sub)
                }
                _ => return Err(ParseError(format!("`{text}`: expected a sub-attribute after `].`"))),
            }
        }
    }
    match parser.peek() {
        None => Ok(path),
        Some(extra) => Err(ParseError(format!("`{text}`: unexpected {extra:?}"))),
    }
}

/// Where paths are resolved: a resource, or one value of a multi-valued complex attribute.
#[derive(Clone, Copy)]
pub enum FilterScope<'a> {
    /// A whole resource of this type.
    Resource(ResourceType),
    /// Inside a value of this complex attribute (value-path filters).
    Within(&'a Attribute),
}

/// The extension a path's URN names: `None` for the core schema, `Err` for an unknown one.
fn extension_of(rt: ResourceType, urn: &str) -> Result<Option<&'static str>, ()> {
    if urn.eq_ignore_ascii_case(rt.core) {
        return Ok(None);
    }
    rt.extension(urn).map(Some).ok_or(())
}

/// Case-insensitive key lookup in a JSON object.
pub fn get_ci<'v>(object: &'v Value, key: &str) -> Option<&'v Value> {
    let map = object.as_object()?;
    map.get(key).or_else(|| map.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v))
}

/// The values a path reaches (multi-valued attributes flattened), and whether they compare
/// case-sensitively.
fn values<'v>(resource: &'v Value, scope: FilterScope<'_>, path: &AttrPath) -> (Vec<&'v Value>, bool, Option<Type>) {
    let (container, definition) = match scope {
        FilterScope::Resource(rt) => {
            let extension = match path.urn.as_deref().map(|u| extension_of(rt, u)) {
                Some(Ok(extension)) => extension,
                Some(Err(())) => return (Vec::new(), false, None),
                None => None,
            };
            let container = match extension {
                Some(urn) => get_ci(resource, urn),
                None => Some(resource),
            };
            (container, rt.resolve(extension, &path.name).map(|r| r.attribute))
        }
        FilterScope::Within(parent) => (Some(resource), parent.sub(&path.name)),
    };
    let Some(value) = container.and_then(|c| get_ci(c, &path.name)) else {
        return (Vec::new(), false, None);
    };
    let mut reached: Vec<&Value> = match value {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    let mut definition = definition;
    let sub = path.sub.as_deref().or_else(|| {
        // `emails eq "x"` compares the `value` sub-attribute of a complex attribute.
        definition.filter(|d| d.kind == Type::Complex).map(|_| "value")
    });
    if let Some(sub) = sub {
        definition = definition.and_then(|d| d.sub(sub));
        reached = reached.into_iter().filter_map(|item| get_ci(item, sub)).collect();
    }
    let case_exact = definition.is_some_and(|d| d.case_exact);
    (reached.into_iter().filter(|v| !v.is_null()).collect(), case_exact, definition.map(|d| d.kind))
}

fn compare(value: &Value, op: Op, literal: &Literal, case_exact: bool, kind: Option<Type>) -> bool {
    use std::cmp::Ordering;
    let ordering = match (value, literal) {
        (Value::String(text), Literal::Str(wanted)) => {
            let (a, b) =
                if case_exact { (text.clone(), wanted.clone()) } else { (text.to_lowercase(), wanted.to_lowercase()) };
            match op {
                Op::Co => return a.contains(&b),
                Op::Sw => return a.starts_with(&b),
                Op::Ew => return a.ends_with(&b),
                _ => {}
            }
            if kind == Some(Type::DateTime) {
                match (chrono::DateTime::parse_from_rfc3339(text), chrono::DateTime::parse_from_rfc3339(wanted)) {
                    (Ok(x), Ok(y)) => x.cmp(&y),
                    _ => a.cmp(&b),
                }
            } else {
                a.cmp(&b)
            }
        }
        (Value::Number(n), Literal::Num(wanted)) => {
            n.as_f64().and_then(|x| x.partial_cmp(wanted)).unwrap_or(Ordering::Less)
        }
        (Value::Bool(b), Literal::Bool(wanted)) => match op {
            Op::Eq => return b == wanted,
            Op::Ne => return b != wanted,
            _ => return false,
        },
        // Booleans Entra sends as "True"/"False" strings are stored normalised, but tolerate
        // a string compared with a boolean literal.
        (Value::String(text), Literal::Bool(wanted)) => {
            let same = text.eq_ignore_ascii_case(if *wanted { "true" } else { "false" });
            return match op {
                Op::Eq => same,
                Op::Ne => !same,
                _ => false,
            };
        }
        _ => return op == Op::Ne,
    };
    match op {
        Op::Eq => ordering == Ordering::Equal,
        Op::Ne => ordering != Ordering::Equal,
        Op::Gt => ordering == Ordering::Greater,
        Op::Ge => ordering != Ordering::Less,
        Op::Lt => ordering == Ordering::Less,
        Op::Le => ordering != Ordering::Greater,
        Op::Co | Op::Sw | Op::Ew => false,
    }
}

/// Whether `resource` (its full JSON, with `id` and `meta`) matches `filter`.
pub fn matches(filter: &Filter, resource: &Value, scope: FilterScope<'_>) -> bool {
    match filter {
        Filter::And(a, b) => matches(a, resource, scope) && matches(b, resource, scope),
        Filter::Or(a, b) => matches(a, resource, scope) || matches(b, resource, scope),
        Filter::Not(inner) => !matches(inner, resource, scope),
        Filter::Present(path) => {
            let (found, _, _) = values(resource, scope, path);
            found.iter().any(|v| match v {
                Value::String(s) => !s.is_empty(),
                Value::Array(a) => !a.is_empty(),
                Value::Object(o) => !o.is_empty(),
                _ => true,
            })
        }
        Filter::Compare(path, op, Literal::Null) => {
            let (found, _, _) = values(resource, scope, path);
            match op {
                Op::Eq => found.is_empty(),
                Op::Ne => !found.is_empty(),
                _ => false,
            }
        }
        Filter::Compare(path, op, literal) => {
            let (found, case_exact, kind) = values(resource, scope, path);
            if *op == Op::Ne {
                return !found.iter().any(|v| compare(v, Op::Eq, literal, case_exact, kind));
            }
            found.iter().any(|v| compare(v, *op, literal, case_exact, kind))
        }
        Filter::ValuePath(path, inner) => {
            let definition = match scope {
                FilterScope::Resource(rt) => {
                    let extension = path.urn.as_deref().and_then(|u| extension_of(rt, u).ok().flatten());
                    rt.resolve(extension, &path.name).map(|r| r.attribute)
                }
                FilterScope::Within(parent) => parent.sub(&path.name),
            };
            let Some(definition) = definition else { return false };
            let whole = AttrPath { urn: path.urn.clone(), name: path.name.clone(), sub: None };
            let container = match scope {
                FilterScope::Resource(rt) => {
                    let extension = whole.urn.as_deref().and_then(|u| extension_of(rt, u).ok().flatten());
                    match extension {
                        Some(urn) => get_ci(resource, urn).and_then(|c| get_ci(c, &whole.name)),
                        None => get_ci(resource, &whole.name),
                    }
                }
                FilterScope::Within(_) => get_ci(resource, &whole.name),
            };
            match container {
                Some(Value::Array(items)) => {
                    items.iter().any(|item| matches(inner, item, FilterScope::Within(definition)))
                }
                Some(item @ Value::Object(_)) => matches(inner, item, FilterScope::Within(definition)),
                _ => false,
            }
        }
    }
}

/// The filter as a condition the store answers from its indexes, if every part of it is one
/// Entra uses; `None` means: evaluate in memory.
pub fn indexed(filter: &Filter, rt: ResourceType) -> Option<ScimCondition> {
    match filter {
        Filter::And(a, b) => Some(ScimCondition::And(Box::new(indexed(a, rt)?), Box::new(indexed(b, rt)?))),
        Filter::Or(a, b) => Some(ScimCondition::Or(Box::new(indexed(a, rt)?), Box::new(indexed(b, rt)?))),
        Filter::Compare(path, Op::Eq, Literal::Str(value)) => {
            let core_urn = path.urn.as_deref().is_none_or(|u| u.eq_ignore_ascii_case(rt.core));
            if !core_urn {
                return None;
            }
            let name = path.name.to_ascii_lowercase();
            let sub = path.sub.as_deref().map(str::to_ascii_lowercase);
            let attribute = match (rt, name.as_str(), sub.as_deref()) {
                (_, "id", None) => IndexedAttribute::Id,
                (_, "externalid", None) => IndexedAttribute::ExternalId,
                (USERS, "username", None) => IndexedAttribute::UserName,
                (USERS, "emails", Some("value")) => IndexedAttribute::EmailValue,
                (GROUPS, "displayname", None) => IndexedAttribute::DisplayName,
                (GROUPS, "members", Some("value")) => IndexedAttribute::MemberValue,
                _ => return None,
            };
            // The store's case-insensitive keys are only exact for ASCII; others stay in memory.
            if attribute.ignores_case() && !value.is_ascii() {
                return None;
            }
            Some(ScimCondition::Equals(attribute, value.clone()))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user() -> Value {
        json!({
            "id": "2819c223", "userName": "Bjensen@Example.com", "externalId": "abc",
            "name": {"givenName": "Barbara", "familyName": "Jensen"},
            "emails": [{"value": "bjensen@example.com", "type": "work", "primary": true},
                       {"value": "babs@jensen.org", "type": "home"}],
            "active": true,
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "Tour Operations",
                "manager": {"value": "26118915"}},
            "meta": {"lastModified": "2011-05-13T04:42:34Z", "resourceType": "User"}
        })
    }

    fn check(filter: &str) -> bool {
        matches(&parse(filter).unwrap(), &user(), FilterScope::Resource(USERS))
    }

    #[test]
    fn the_rfc_examples_parse_and_evaluate() {
        assert!(check(r#"userName eq "bjensen@example.com""#), "userName is case-insensitive");
        assert!(!check(r#"externalId eq "ABC""#), "externalId is case-exact");
        assert!(check(r#"name.familyName co "ens""#));
        assert!(check(r#"userName sw "B""#));
        assert!(!check(r#"title pr"#));
        assert!(check(r#"meta.lastModified gt "2011-05-13T04:42:34.000Z" or active eq true"#));
        assert!(check(r#"emails[type eq "work" and value co "@example.com"]"#));
        assert!(!check(r#"emails[type eq "work" and value co "@jensen.org"]"#));
        assert!(check(r#"emails.value ew ".org""#));
        assert!(check(r#"NOT (userName eq "x") AND (active eq true)"#));
        assert!(check(r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "tour operations""#));
        assert!(check(r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "26118915""#));
        assert!(check(r#"urn:ietf:params:scim:schemas:core:2.0:User:userName eq "bjensen@example.com""#));
        assert!(check(r#"title eq null"#));
        assert!(check(r#"userName ne "other""#));
        assert!(check(r#"meta.lastModified lt "2012-01-01T00:00:00Z""#));
    }

    #[test]
    fn precedence_is_not_then_and_then_or() {
        let parsed = parse(r#"a eq "1" or b eq "2" and c eq "3""#).unwrap();
        assert!(matches!(parsed, Filter::Or(_, ref right) if matches!(**right, Filter::And(_, _))));
    }

    #[test]
    fn bad_filters_say_why() {
        for bad in [
            "userName eq",
            "userName zz \"x\"",
            "(userName eq \"x\"",
            "userName eq \"x",
            "eq \"x\"",
            "userName eq \"x\" extra",
            "emails[type eq \"work\"",
            "not userName eq \"x\"",
            "",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} parsed");
        }
        let deep = format!("{}userName pr{}", "(".repeat(40), ")".repeat(40));
        assert!(parse(&deep).unwrap_err().0.contains("deeper"));
        assert!(parse(&"a".repeat(MAX_FILTER_LEN + 1)).is_err());
        let chain = |n: usize| vec!["id eq \"x\""; n + 1].join(" or ");
        assert!(parse(&chain(MAX_CONNECTIVES)).is_ok());
        let error = parse(&chain(MAX_CONNECTIVES + 1)).unwrap_err();
        assert!(error.0.contains("more than 100 `and`/`or`"), "{error:?}");
    }

    #[test]
    fn patch_paths_parse() {
        let path = parse_path(r#"emails[type eq "work"].value"#).unwrap();
        assert_eq!(path.attr.name, "emails");
        assert_eq!(path.sub_after_filter.as_deref(), Some("value"));
        let path = parse_path(r#"members[value eq "2819c223-7f76-453a-919d-413861904646"]"#).unwrap();
        assert!(path.filter.is_some() && path.sub_after_filter.is_none());
        let path = parse_path("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value").unwrap();
        assert_eq!(path.attr.urn.as_deref(), Some("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"));
        assert_eq!((path.attr.name.as_str(), path.attr.sub.as_deref()), ("manager", Some("value")));
        assert!(parse_path("name.givenName").is_ok_and(|p| p.attr.sub.as_deref() == Some("givenName")));
        assert!(parse_path("emails[type eq \"work\"].").is_err());
        assert!(parse_path("a b").is_err());
    }

    #[test]
    fn entra_filters_become_indexed_conditions() {
        let user_name = indexed(&parse(r#"userName eq "Ada@Contoso.com""#).unwrap(), USERS).unwrap();
        assert_eq!(user_name, ScimCondition::Equals(IndexedAttribute::UserName, "Ada@Contoso.com".into()));
        assert!(indexed(&parse(r#"externalId eq "x" and id eq "y""#).unwrap(), USERS).is_some());
        assert!(indexed(&parse(r#"displayName eq "Devs""#).unwrap(), GROUPS).is_some());
        assert!(indexed(&parse(r#"displayName eq "Devs""#).unwrap(), USERS).is_none());
        assert!(indexed(&parse(r#"members[value eq "x"]"#).unwrap(), GROUPS).is_none());
        assert!(indexed(&parse(r#"members.value eq "x""#).unwrap(), GROUPS).is_some());
        assert!(indexed(&parse(r#"title co "x""#).unwrap(), USERS).is_none());
        assert!(indexed(&parse(r#"userName eq "Ädä""#).unwrap(), USERS).is_none());
        assert!(indexed(&parse(r#"externalId eq "Ädä""#).unwrap(), USERS).is_some());
    }
}
