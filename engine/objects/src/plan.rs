//! How a file is cut into S3 parts: S3's rules (at least 5 MiB a part
//! except the last, at most 5 GiB a part and 10,000 parts), a default that
//! grows with the file so a big one still fits, and the window of each part.

/// The smallest part but the last.
pub const MIN_PART: u64 = 5 << 20;
/// The largest part.
pub const MAX_PART: u64 = 5 << 30;
/// The most parts an upload has.
pub const MAX_PARTS: u64 = 10_000;
/// The default part size for files small enough: the AWS CLI's 8 MiB.
pub const DEFAULT_PART: u64 = 8 << 20;

/// A file cut into parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// The file's length.
    pub size: u64,
    /// Every part's length but the last's.
    pub part_size: u64,
}

/// Why a file cannot be cut as asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanError(pub String);

impl std::fmt::Display for PlanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PlanError {}

impl Plan {
    /// Cuts `size` bytes in parts of `part_size` (the default when `None`:
    /// 8 MiB, or the next MiB multiple above `size / 10,000`).
    pub fn new(size: u64, part_size: Option<u64>) -> Result<Plan, PlanError> {
        if size > MAX_PART * MAX_PARTS {
            return Err(PlanError(format!("{size} bytes is more than S3 takes in one object")));
        }
        let part_size = match part_size {
            Some(p) if p < MIN_PART => return Err(PlanError(format!("part size {p} is below S3's 5 MiB"))),
            Some(p) if p > MAX_PART => return Err(PlanError(format!("part size {p} is above S3's 5 GiB"))),
            Some(p) if size.div_ceil(p) > MAX_PARTS => {
                return Err(PlanError(format!(
                    "part size {p} cuts {size} bytes into more than 10,000 parts"
                )))
            }
            Some(p) => p,
            None => DEFAULT_PART.max(size.div_ceil(MAX_PARTS).next_multiple_of(1 << 20)),
        };
        Ok(Plan { size, part_size })
    }

    /// Parts: at least one (an empty file is one empty part).
    pub fn parts(&self) -> u32 {
        self.size.div_ceil(self.part_size).max(1) as u32
    }

    /// Part `number`'s (from 1) offset and length.
    pub fn window(&self, number: u32) -> (u64, u64) {
        let start = u64::from(number.saturating_sub(1)) * self.part_size;
        let len = self.part_size.min(self.size.saturating_sub(start));
        (start, len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sizes_at_the_edges() {
        let p = Plan::new(0, None).unwrap();
        assert_eq!((p.parts(), p.window(1)), (1, (0, 0)));
        let p = Plan::new(MIN_PART - 1, Some(MIN_PART)).unwrap();
        assert_eq!((p.parts(), p.window(1)), (1, (0, MIN_PART - 1)));
        let p = Plan::new(MIN_PART + 1, Some(MIN_PART)).unwrap();
        assert_eq!((p.parts(), p.window(2)), (2, (MIN_PART, 1)));
        // 1 TiB: 8 MiB parts would be 131,072; the default grows.
        let p = Plan::new(1 << 40, None).unwrap();
        assert!(p.parts() as u64 <= MAX_PARTS && p.part_size % (1 << 20) == 0);
        assert!(Plan::new(100, Some(MIN_PART - 1)).is_err());
        assert!(Plan::new(100, Some(MAX_PART + 1)).is_err());
        assert!(Plan::new(MIN_PART * 10_001, Some(MIN_PART)).is_err());
    }

    proptest! {
        #[test]
        fn the_parts_cover_the_file_once_within_the_rules(size in 0u64..(1 << 44), part in proptest::option::of(MIN_PART..MAX_PART)) {
            let Ok(plan) = Plan::new(size, part) else { return Ok(()) };
            let mut next = 0;
            for n in 1..=plan.parts() {
                let (start, len) = plan.window(n);
                prop_assert_eq!(start, next);
                prop_assert!(len <= MAX_PART);
                if n < plan.parts() {
                    prop_assert!(len >= MIN_PART);
                }
                next += len;
            }
            prop_assert_eq!(next, size);
            prop_assert!(u64::from(plan.parts()) <= MAX_PARTS);
        }
    }
}
