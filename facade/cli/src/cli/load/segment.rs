//! `--segment I/N`: this process's share of a job that N processes run
//! together, decided without I/O. The job's uploads are numbered 0, 1, 2,
//! …; segment I (1 ≤ I ≤ N) sends those whose number is I − 1 modulo N, so
//! no two segments send the same one and together they send every one. In
//! the open model each keeps its uploads' intended times (upload k at
//! start + k / rate): together they start uploads exactly as one process
//! would. `-c` is shared out the same way (the first `c mod N` segments get
//! one more).

use std::fmt;
use std::str::FromStr;

/// Segment `index` of `count` (1-based), as `--segment I/N` gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Segment {
    /// This segment, from 1.
    pub index: u64,
    /// Segments in the job.
    pub count: u64,
}

impl Segment {
    /// The whole job in one process.
    pub const WHOLE: Segment = Segment { index: 1, count: 1 };

    /// The number of the job's upload that is this segment's `k`-th.
    pub fn upload_number(&self, k: u64) -> u64 {
        k * self.count + (self.index - 1)
    }

    /// This segment's share of `total` things (uploads, places in flight):
    /// the first `total mod N` segments take one more.
    pub fn share(&self, total: u64) -> u64 {
        total / self.count + u64::from(self.index - 1 < total % self.count)
    }
}

impl FromStr for Segment {
    type Err = String;

    fn from_str(text: &str) -> Result<Segment, String> {
        let bad = || format!("--segment must look like I/N with 1 <= I <= N: {text:?}");
        let (i, n) = text.split_once('/').ok_or_else(bad)?;
        let (index, count) = (
            i.trim().parse::<u64>().map_err(|_| bad())?,
            n.trim().parse::<u64>().map_err(|_| bad())?,
        );
        if index == 0 || index > count {
            return Err(bad());
        }
        Ok(Segment { index, count })
    }
}

impl fmt::Display for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(count: u64) -> Vec<Segment> {
        (1..=count).map(|index| Segment { index, count }).collect()
    }

    #[test]
    fn shares_add_up_to_the_job_and_differ_by_one_at_most() {
        for count in 1..=7 {
            for total in [0, 1, 2, 6, 7, 10, 1001] {
                let shares: Vec<u64> = all(count).iter().map(|s| s.share(total)).collect();
                assert_eq!(shares.iter().sum::<u64>(), total, "{total} in {count}");
                let (min, max) = (shares.iter().min().unwrap(), shares.iter().max().unwrap());
                assert!(max - min <= 1);
            }
        }
    }

    #[test]
    fn every_upload_number_is_sent_by_exactly_one_segment() {
        let (count, total) = (3, 10);
        let mut numbers: Vec<u64> = all(count)
            .iter()
            .flat_map(|s| (0..s.share(total)).map(move |k| s.upload_number(k)))
            .collect();
        numbers.sort_unstable();
        assert_eq!(numbers, (0..total).collect::<Vec<_>>());
    }

    #[test]
    fn parsing() {
        assert_eq!("2/3".parse::<Segment>(), Ok(Segment { index: 2, count: 3 }));
        for bad in ["0/3", "4/3", "3", "a/b", "1/0", ""] {
            assert!(bad.parse::<Segment>().is_err(), "{bad}");
        }
        assert_eq!(Segment { index: 2, count: 3 }.to_string(), "2/3");
    }
}
