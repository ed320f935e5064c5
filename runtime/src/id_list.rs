//! Lists of numbers as the kernel writes them ("0-3,7"): CPUs and memory nodes, in the
//! spec (execCPUAffinity, memoryPolicy.nodes) and in cgroup files (cpuset.cpus).

/// Each number of `text` ("0-3,7" → 0, 1, 2, 3, 7), all below `limit`; None when `text`
/// is not such a list. Blanks around items, and empty items, are ignored.
pub fn parse(text: &str, limit: usize) -> Option<Vec<usize>> {
    let mut out = Vec::new();
    for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (lo, hi) = item.split_once('-').unwrap_or((item, item));
        let (lo, hi): (usize, usize) = (lo.parse().ok()?, hi.parse().ok()?);
        if lo > hi || hi >= limit {
            return None;
        }
        out.extend(lo..=hi);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn lists() {
        assert_eq!(parse("0-2,5\n", 8), Some(vec![0, 1, 2, 5]));
        assert_eq!(parse(" 3 , ,1", 8), Some(vec![3, 1]));
        assert_eq!(parse("", 8), Some(vec![]));
        for bad in ["3-1", "8", "0-8", "a", "1-2-3", "-1", "1-"] {
            assert_eq!(parse(bad, 8), None, "{bad:?}");
        }
    }
}
