//! C2SP `tlog-tiles`: the log as static files. A tile holds up to 256 consecutive hashes of one
//! tree level (tile level `L` holds Merkle level `8·L`); the rightmost tile of a level may be
//! partial (`.p/<width>`). Entry bundles hold up to 256 entries, each prefixed by its length as
//! a big-endian u16.
//!
//! ```
//! assert_eq!(cg_proof::tiles::tile_path(0, 1234067, 256), "tile/0/x001/x234/067");
//! assert_eq!(cg_proof::tiles::tile_path(1, 0, 3), "tile/1/000.p/3");
//! ```

use crate::{Hash, root};

/// Hashes per full tile (tile height 8).
pub const WIDTH: u64 = 256;

/// The index part of a tile path: groups of three digits, all but the last prefixed by `x`.
fn index_path(mut n: u64) -> String {
    let mut groups = vec![format!("{:03}", n % 1000)];
    n /= 1000;
    while n > 0 {
        groups.push(format!("x{:03}", n % 1000));
        n /= 1000;
    }
    groups.reverse();
    groups.join("/")
}

fn suffix(width: u64) -> String {
    if width < WIDTH {
        format!(".p/{width}")
    } else {
        String::new()
    }
}

/// `tile/<level>/<index>[.p/<width>]`.
pub fn tile_path(level: u8, index: u64, width: u64) -> String {
    format!("tile/{level}/{}{}", index_path(index), suffix(width))
}

/// `tile/entries/<index>[.p/<width>]`.
pub fn entries_path(index: u64, width: u64) -> String {
    format!("tile/entries/{}{}", index_path(index), suffix(width))
}

/// Every hash tile of the tree with these leaf hashes: `(path, bytes)`.
pub fn hash_tiles(leaves: &[Hash]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut level: Vec<Hash> = leaves.to_vec();
    let mut l = 0u8;
    while !level.is_empty() {
        for (i, chunk) in level.chunks(WIDTH as usize).enumerate() {
            let bytes: Vec<u8> = chunk.iter().flatten().copied().collect();
            out.push((tile_path(l, i as u64, chunk.len() as u64), bytes));
        }
        // The next tile level: roots of complete groups of 256 (8 Merkle levels up).
        level = level.chunks_exact(WIDTH as usize).map(root).collect();
        l += 1;
    }
    out
}

/// Every entry bundle of these entries: `(path, bytes)`.
pub fn entry_bundles(entries: &[Vec<u8>]) -> Vec<(String, Vec<u8>)> {
    entries
        .chunks(WIDTH as usize)
        .enumerate()
        .map(|(i, chunk)| {
            let mut bytes = Vec::new();
            for e in chunk {
                // Entries are short text (< 200 bytes); a longer one cannot be bundled.
                let len = u16::try_from(e.len()).unwrap_or(u16::MAX);
                bytes.extend_from_slice(&len.to_be_bytes());
                bytes.extend_from_slice(&e[..usize::from(len)]);
            }
            (entries_path(i as u64, chunk.len() as u64), bytes)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::leaf_hash;

    #[test]
    fn paths_and_levels() {
        assert_eq!(index_path(0), "000");
        assert_eq!(index_path(1000), "x001/000");
        assert_eq!(entries_path(2, 5), "tile/entries/002.p/5");
        let leaves: Vec<Hash> = (0..600u32).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        let tiles = hash_tiles(&leaves);
        let paths: Vec<&str> = tiles.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            [
                "tile/0/000",
                "tile/0/001",
                "tile/0/002.p/88",
                "tile/1/000.p/2"
            ]
        );
        // A level-1 hash is the root of 256 leaves.
        assert_eq!(&tiles[3].1[..32], &root(&leaves[..256])[..]);
        let bundles = entry_bundles(&[b"ab".to_vec(), b"c".to_vec()]);
        assert_eq!(
            bundles,
            vec![(
                "tile/entries/000.p/2".to_owned(),
                vec![0, 2, b'a', b'b', 0, 1, b'c']
            )]
        );
    }
}
