//! Test support: damages a valid input the way the property tests of the decoders and the
//! configuration loader do — deletes, inserts or replaces bytes at positions taken modulo the
//! length, one byte in three drawn from the characters the format gives meaning to.

/// One edit: (position, operation 0 delete / 1 insert / 2 replace, byte).
pub type Edit = (usize, u8, u8);

pub fn damage(input: &[u8], edits: &[Edit], significant: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for &(at, op, byte) in edits {
        let byte = match byte % 3 {
            0 => significant[byte as usize % significant.len()],
            _ => byte,
        };
        let at = at % (out.len() + 1);
        match op % 3 {
            0 if at < out.len() => {
                out.remove(at);
            }
            1 => out.insert(at, byte),
            _ if at < out.len() => out[at] = byte,
            _ => out.push(byte),
        }
    }
    out
}

#[test]
fn edits_apply_in_order() {
    assert_eq!(damage(b"abc", &[(1, 0, 1)], b"x"), b"ac");
    assert_eq!(damage(b"abc", &[(0, 1, 1)], b"x"), b"\x01abc");
    assert_eq!(damage(b"abc", &[(2, 2, 0)], b"x"), b"abx");
}
