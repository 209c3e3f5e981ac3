//! BLAKE3 over parts hashed as subtrees: a running digest that keeps the
//! chaining values of its whole parts, so that parts can be hashed apart
//! (on other threads, or by another node before) and merged in order.

use blake3::hazmat::{
    ChainingValue, HasherExt, Mode, merge_subtrees_non_root, merge_subtrees_root,
};

/// BLAKE3 over parts hashed as subtrees.
#[derive(Debug, Clone)]
pub struct Blake3Run {
    pub(crate) part_len: u64,
    /// Chaining values of whole subtrees, largest first.
    pub(crate) stack: Vec<ChainingValue>,
    /// Parts finished and on the stack.
    pub(crate) parts: u64,
    /// The part being hashed, and its bytes so far.
    pub(crate) current: blake3::Hasher,
    pub(crate) len: u64,
    /// The first part's root digest, when taken up right after it.
    pub(crate) first_root: Option<[u8; 32]>,
}

pub(crate) fn part_hasher(offset: u64) -> blake3::Hasher {
    let mut h = blake3::Hasher::new();
    if offset > 0 {
        h.set_input_offset(offset);
    }
    h
}

/// Pushes the value of part number `before` (0-based) after merging what
/// the parts before it complete, as `blake3::Hasher` does with chunks:
/// the stack keeps one value per set bit of the count of parts.
pub(crate) fn push(stack: &mut Vec<ChainingValue>, cv: ChainingValue, before: u64) {
    while stack.len() > before.count_ones() as usize {
        let right = stack.pop().expect("two values to merge");
        let left = stack.pop().expect("two values to merge");
        stack.push(merge_subtrees_non_root(&left, &right, Mode::Hash));
    }
    stack.push(cv);
}

impl Blake3Run {
    pub(crate) fn new(part_len: u64) -> Blake3Run {
        Blake3Run {
            part_len,
            stack: Vec::new(),
            parts: 0,
            current: blake3::Hasher::new(),
            len: 0,
            first_root: None,
        }
    }

    pub(crate) fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.len == self.part_len {
                // More input follows, so the full part is not the root.
                let cv = self.current.finalize_non_root();
                push(&mut self.stack, cv, self.parts);
                self.parts += 1;
                self.current = part_hasher(self.parts * self.part_len);
                self.len = 0;
            }
            let take = ((self.part_len - self.len) as usize).min(data.len());
            self.current.update(&data[..take]);
            self.len += take as u64;
            data = &data[take..];
        }
    }

    /// The length of a part.
    pub(crate) fn part_len(&self) -> u64 {
        self.part_len
    }

    /// Bytes hashed.
    pub(crate) fn bytes(&self) -> u64 {
        self.parts * self.part_len + self.len
    }

    /// Adds the chaining values of the whole parts that follow, each hashed
    /// apart with [`part_hasher`] at its offset. Only where the bytes
    /// hashed end on a part boundary, and with more input to follow the
    /// last of these parts, or with two or more of them (a single part
    /// after none is the whole input, whose root its value cannot give).
    pub(crate) fn add_parts(&mut self, cvs: &[ChainingValue]) {
        assert_eq!(self.bytes() % self.part_len, 0, "parts start on a boundary");
        if cvs.is_empty() {
            return;
        }
        if self.len == self.part_len {
            let cv = self.current.finalize_non_root();
            push(&mut self.stack, cv, self.parts);
            self.parts += 1;
        }
        for cv in cvs {
            push(&mut self.stack, *cv, self.parts);
            self.parts += 1;
        }
        self.current = part_hasher(self.parts * self.part_len);
        self.len = 0;
    }

    pub(crate) fn finish(&self) -> blake3::Hash {
        if self.parts == 0 {
            return self.current.finalize();
        }
        // As `blake3::Hasher` does at the end of its input: the part being
        // hashed goes on the stack after what it completes is merged.
        if self.len == 0 && self.parts == 1 {
            if let Some(root) = self.first_root {
                return blake3::Hash::from_bytes(root);
            }
        }
        let mut stack = self.stack.clone();
        if self.len > 0 {
            push(&mut stack, self.current.finalize_non_root(), self.parts);
        }
        let mut right = stack.pop().expect("a part on the stack");
        while let Some(left) = stack.pop() {
            if stack.is_empty() {
                return merge_subtrees_root(&left, &right, Mode::Hash);
            }
            right = merge_subtrees_non_root(&left, &right, Mode::Hash);
        }
        // One part in all, taken up at its end: never checkpointed (see
        // `checkpoint`), so not reached.
        blake3::Hash::from_bytes(right)
    }
}
