//! The Huffman code of RFC 7541 §5.2 (Appendix B): encoding, and decoding
//! that refuses what the RFC calls a decoding error (an EOS symbol, padding
//! longer than 7 bits or not all ones).

use std::sync::OnceLock;

use super::tables::HUFFMAN;
use super::HpackError;

/// The length in bytes of `bytes` once Huffman-coded.
pub fn encoded_len(bytes: &[u8]) -> usize {
    let bits: usize = bytes.iter().map(|&b| usize::from(HUFFMAN[usize::from(b)].1)).sum();
    bits.div_ceil(8)
}

/// Appends `bytes` Huffman-coded to `out`, padded with ones.
pub fn encode(bytes: &[u8], out: &mut Vec<u8>) {
    let mut acc: u64 = 0;
    let mut bits: u32 = 0;
    for &b in bytes {
        let (code, len) = HUFFMAN[usize::from(b)];
        acc = (acc << len) | u64::from(code);
        bits += u32::from(len);
        while bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
        acc &= (1u64 << bits) - 1;
    }
    if bits > 0 {
        // The most significant bits of EOS: all ones.
        let pad = 8 - bits;
        out.push(((acc << pad) | ((1u64 << pad) - 1)) as u8);
    }
}

/// A node's two children: a node index (≥ 0) or a symbol (`-(symbol + 1)`).
type Node = [i16; 2];

/// The code as a binary tree, built once.
fn tree() -> &'static [Node] {
    static TREE: OnceLock<Vec<Node>> = OnceLock::new();
    TREE.get_or_init(|| {
        let mut nodes: Vec<Node> = vec![[0, 0]];
        for (symbol, &(code, len)) in HUFFMAN.iter().enumerate() {
            let mut at = 0usize;
            for i in (0..len).rev() {
                let bit = ((code >> i) & 1) as usize;
                if i == 0 {
                    nodes[at][bit] = -(symbol as i16 + 1);
                } else if nodes[at][bit] > 0 {
                    at = nodes[at][bit] as usize;
                } else {
                    nodes.push([0, 0]);
                    let next = nodes.len() - 1;
                    nodes[at][bit] = next as i16;
                    at = next;
                }
            }
        }
        nodes
    })
}

/// Appends the decoding of `coded` to `out`.
pub fn decode(coded: &[u8], out: &mut Vec<u8>) -> Result<(), HpackError> {
    let tree = tree();
    let mut at = 0usize;
    // Bits read since the last symbol, and whether they were all ones.
    let mut pending = 0u32;
    let mut ones = true;
    for &byte in coded {
        for i in (0..8).rev() {
            let bit = usize::from((byte >> i) & 1);
            pending += 1;
            ones &= bit == 1;
            match tree[at][bit] {
                0 => return Err(HpackError::Huffman),
                next if next > 0 => at = next as usize,
                leaf => {
                    let symbol = (-leaf - 1) as u16;
                    if symbol == 256 {
                        return Err(HpackError::Huffman);
                    }
                    out.push(symbol as u8);
                    at = 0;
                    pending = 0;
                    ones = true;
                }
            }
        }
    }
    // Padding: fewer than 8 bits, all ones (a prefix of EOS).
    if pending > 7 || !ones {
        return Err(HpackError::Huffman);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hpack::tests::hex;

    #[test]
    fn the_examples_of_appendix_c4_encode_and_decode() {
        for (text, coded) in [
            ("www.example.com", "f1e3 c2e5 f23a 6ba0 ab90 f4ff"),
            ("no-cache", "a8eb 1064 9cbf"),
            ("custom-key", "25a8 49e9 5ba9 7d7f"),
            ("custom-value", "25a8 49e9 5bb8 e8b4 bf"),
        ] {
            let mut out = Vec::new();
            encode(text.as_bytes(), &mut out);
            assert_eq!(out, hex(coded), "{text}");
            assert_eq!(encoded_len(text.as_bytes()), out.len());
            let mut back = Vec::new();
            decode(&out, &mut back).unwrap();
            assert_eq!(back, text.as_bytes());
        }
    }

    #[test]
    fn every_byte_round_trips() {
        let all: Vec<u8> = (0..=255).collect();
        let mut coded = Vec::new();
        encode(&all, &mut coded);
        let mut back = Vec::new();
        decode(&coded, &mut back).unwrap();
        assert_eq!(back, all);
    }

    #[test]
    fn bad_padding_and_eos_are_refused() {
        // 'a' is 00011 (5 bits): padding 000 is not all ones.
        assert_eq!(decode(&[0b0001_1000], &mut Vec::new()), Err(HpackError::Huffman));
        // A whole byte of padding (8 ones) after a symbol.
        assert_eq!(decode(&[0b0001_1111, 0xff], &mut Vec::new()), Err(HpackError::Huffman));
        // EOS itself (30 ones).
        assert_eq!(
            decode(&[0xff, 0xff, 0xff, 0xfc], &mut Vec::new()),
            Err(HpackError::Huffman)
        );
        assert_eq!(decode(&[], &mut Vec::new()), Ok(()));
    }
}
