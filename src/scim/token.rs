//! SCIM bearer tokens: `c7s_<id>_<64 hex>`. The id finds the row; the secret part is compared
//! by its SHA-256 in constant time. Only the hash is stored. 256 random bits make a slow hash
//! pointless: there is nothing to guess.

const PREFIX: &str = "c7s_";

/// A fresh random secret (hex) and its hash.
pub fn new_secret() -> Result<(String, Vec<u8>), getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let hash = hash(&secret);
    Ok((secret, hash))
}

/// The token as handed to the admin.
pub fn format(id: i64, secret: &str) -> String {
    format!("{PREFIX}{id}_{secret}")
}

/// SHA-256 of a token's secret part, as stored.
pub fn hash(secret: &str) -> Vec<u8> {
    crate::secret::hash(secret)
}

/// Splits a presented token into (id, secret); `None` if it is not one of ours.
pub fn split(token: &str) -> Option<(i64, &str)> {
    let rest = token.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    Some((id.parse().ok()?, secret))
}

/// Whether `secret` hashes to `stored`, in time independent of where they differ.
pub fn verify(secret: &str, stored: &[u8]) -> bool {
    crate::secret::matches(secret, stored)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_verify() {
        let (secret, stored) = new_secret().unwrap();
        assert_eq!(secret.len(), 64);
        let token = format(7, &secret);
        let (id, presented) = split(&token).unwrap();
        assert_eq!(id, 7);
        assert!(verify(presented, &stored));
        assert!(!verify(&secret.replace(&secret[..1], "z"), &stored));
        assert!(split("Bearer nonsense").is_none() && split("c7s_x_y").is_none());
        assert_ne!(new_secret().unwrap().0, secret);
    }
}
