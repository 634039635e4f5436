//! The node's own Ed25519 key, kept in the node directory as `key.priv` (Crossbar's file and
//! format, so a Crossbar node directory keeps its key): the node's stable identity across
//! restarts (its node id is the public key in hex) and its default WAMP-Cryptosign credential
//! for links.

use std::path::Path;

use ring::signature::{Ed25519KeyPair, KeyPair as _};

/// The file in the node directory.
pub const KEY_FILE: &str = "key.priv";

/// The node's key.
#[derive(Clone)]
pub struct NodeKey {
    /// The 32-byte private seed.
    pub seed: [u8; 32],
    /// The public key, in hex: the node id.
    pub node_id: String,
}

impl std::fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeKey")
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

impl NodeKey {
    /// The key of a seed.
    pub fn from_seed(seed: [u8; 32]) -> Result<Self, String> {
        let pair = Ed25519KeyPair::from_seed_unchecked(&seed)
            .map_err(|e| format!("not an Ed25519 seed: {e}"))?;
        Ok(Self {
            seed,
            node_id: hex::encode(pair.public_key().as_ref()),
        })
    }

    /// Reads a key file: 64 hex digits, or Crossbar's `key.priv` (`private-key-ed25519: <hex>`).
    pub fn read(file: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(file)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        let hex_seed = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("private-key-ed25519:"))
            .unwrap_or(text.trim())
            .trim();
        let seed: [u8; 32] = hex::decode(hex_seed)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| {
                format!(
                    "{}: expected an Ed25519 private key as 64 hex digits, or a line \
                     `private-key-ed25519: <64 hex digits>`",
                    file.display()
                )
            })?;
        Self::from_seed(seed)
    }

    /// The node's key from `dir/key.priv`, created (owner-only) when missing.
    pub fn load_or_create(dir: &Path) -> Result<Self, String> {
        let file = dir.join(KEY_FILE);
        if file.exists() {
            return Self::read(&file);
        }
        let key = Self::from_seed(rand::random())?;
        let text = format!(
            "# The node's Ed25519 key (its identity for router links). Keep it private.\n\
             creator: switchboard\n\
             public-key-ed25519: {}\n\
             private-key-ed25519: {}\n",
            key.node_id,
            hex::encode(key.seed)
        );
        write_private(&file, &text).map_err(|e| format!("cannot write {}: {e}", file.display()))?;
        tracing::info!(file = %file.display(), node_id = %key.node_id, "created the node key");
        Ok(key)
    }
}

/// Writes a file only its owner can read.
fn write_private(file: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(file)?;
    f.write_all(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_created_once_and_read_back_in_crossbars_format() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = NodeKey::load_or_create(dir.path()).expect("created");
        let again = NodeKey::load_or_create(dir.path()).expect("read");
        assert_eq!(first.node_id, again.node_id);
        assert_eq!(first.node_id.len(), 64);
        std::fs::write(dir.path().join("bad"), "nonsense").expect("write");
        let e = NodeKey::read(&dir.path().join("bad")).unwrap_err();
        assert!(e.contains("64 hex digits"), "{e}");
    }
}
